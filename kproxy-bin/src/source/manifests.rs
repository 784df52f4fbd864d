//! Manifest files source.
