//! Heavy tools (issue 6, docs/decisions.md D7: heavy jobs queued and run one
//! after another): a server's `heavyTools` (names or glob patterns) run
//! through a queue of their own with `heavyConcurrency` slots (1 = strictly
//! sequential), so a burst of slow jobs never takes the server's ordinary
//! call slots.

// The patterns are config data (below this module, docs/module-order.md).
pub use crate::config::limits::{glob_match, HeavyTools};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_names() {
        assert!(glob_match("export_*", "export_pdf"));
        assert!(glob_match("export_*", "export_"));
        assert!(!glob_match("export_*", "do_export_pdf"));
        assert!(glob_match("*report*", "monthly_report_v2"));
        assert!(glob_match("get_?", "get_a") && !glob_match("get_?", "get_ab"));
        assert!(glob_match("exact", "exact") && !glob_match("exact", "exactly"));
        assert!(glob_match("*", "") && !glob_match("?", ""));
        assert!(glob_match("a*b*c", "aXXbYYc") && !glob_match("a*b*c", "aXXbYY"));
        let h = HeavyTools(vec!["build".into(), "render_*".into()]);
        assert!(h.matches("build") && h.matches("render_video") && !h.matches("echo"));
    }
}
