//! Heavy tools (issue 6, seeds/004 §8.4 "무거운 작업은 큐에 넣고 순차 처리"):
//! a server's `heavyTools` (names or glob patterns) run through a queue of
//! their own with `heavyConcurrency` slots, so a burst of slow jobs never
//! takes the server's ordinary call slots.

/// Whether `name` matches the glob `pattern`: `*` any run of characters
/// (also empty), `?` exactly one character, everything else literal.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matcher with one backtrack point (the last `*`): O(p·n) worst case.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A server's heavy tool patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeavyTools(pub Vec<String>);

impl HeavyTools {
    /// Whether the server's tool `name` (its own name, not the exposed one) is heavy.
    pub fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|p| glob_match(p, name))
    }
}

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
