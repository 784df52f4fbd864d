//! GoDuration against Go's rules, over many values: printing then parsing gives the value
//! back, and the printed form has Go's shape.

use kproxy_core::config::GoDuration;
use proptest::prelude::*;

proptest! {
    #[test]
    fn display_then_parse_is_identity(nanos in any::<i64>()) {
        let d = GoDuration::from_nanos(nanos);
        prop_assert_eq!(GoDuration::parse(&d.to_string()), Ok(d));
    }

    #[test]
    fn whole_seconds_print_as_h_m_s(secs in 1i64..1_000_000) {
        let text = GoDuration::from_secs(secs).to_string();
        let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
        let expected = if h > 0 { format!("{h}h{m}m{s}s") } else if m > 0 { format!("{m}m{s}s") } else { format!("{s}s") };
        prop_assert_eq!(text, expected);
    }

    #[test]
    fn sums_of_units_parse(h in 0i64..1000, m in 0i64..1000, ms in 0i64..100_000) {
        let text = format!("{h}h{m}m{ms}ms");
        let expected = GoDuration::from_nanos(((h * 60 + m) * 60_000 + ms) * 1_000_000);
        prop_assert_eq!(GoDuration::parse(&text), Ok(expected));
    }
}
