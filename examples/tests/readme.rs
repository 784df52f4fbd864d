//! The README's "Embedding" code block is the node-agent example's `embed` function, so
//! the snippet readers copy compiles and is tested (`tests/node_agent.rs`).

/// The lines between `// ANCHOR: embedding` and `// ANCHOR_END: embedding`.
fn example_region() -> String {
    let source = include_str!("../node_agent.rs");
    let start = source.find("// ANCHOR: embedding\n").expect("start anchor in node_agent.rs");
    let body = &source[start + "// ANCHOR: embedding\n".len()..];
    let end = body.find("// ANCHOR_END: embedding").expect("end anchor in node_agent.rs");
    body[..end].to_owned()
}

/// The first ```rust block after the `## Embedding` heading.
fn readme_block() -> String {
    let readme = include_str!("../../README.md");
    let section = readme.find("\n## Embedding\n").expect("README has an Embedding section");
    let rest = &readme[section..];
    let open = rest.find("```rust\n").expect("a rust code block in the Embedding section");
    let code = &rest[open + "```rust\n".len()..];
    let close = code.find("```").expect("the code block is closed");
    code[..close].to_owned()
}

#[test]
fn readme_embedding_snippet_is_the_node_agent_example() {
    assert_eq!(
        readme_block(),
        example_region(),
        "README.md's Embedding block must be node_agent.rs between the ANCHOR lines: copy it over"
    );
}
