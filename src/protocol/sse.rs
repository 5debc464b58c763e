//! Reading `text/event-stream` bodies (the HTML Living Standard's SSE parsing
//! rules, as MCP's Streamable HTTP uses them): lines are `field: value`,
//! events end at a blank line, lines starting with `:` are comments.

/// One parsed event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// `event:` (empty means `message`).
    pub event: String,
    /// The `data:` lines joined by `\n`.
    pub data: String,
    /// `id:` when present.
    pub id: Option<String>,
    /// `retry:` in ms when present.
    pub retry_ms: Option<u64>,
}

/// Incremental parser: feed lines (without the line terminator), get events.
#[derive(Debug, Default)]
pub struct Parser {
    current: Event,
    has_data: bool,
}

impl Parser {
    /// A new parser.
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Feeds one line (a trailing `\r` is stripped). Returns an event when the
    /// line is blank and the data is not empty (an empty data buffer is not
    /// dispatched: the priming event of 2025-11-25 servers is `id: …` with an
    /// empty `data:`).
    pub fn line(&mut self, line: &str) -> Option<Event> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            let ev = std::mem::take(&mut self.current);
            let had = std::mem::replace(&mut self.has_data, false);
            return (had && !ev.data.is_empty()).then_some(ev);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.current.event = value.to_string(),
            "id" if !value.contains('\0') => self.current.id = Some(value.to_string()),
            "retry" => self.current.retry_ms = value.parse().ok(),
            _ => {}
        }
        None
    }
}

/// Parses a complete SSE body into its events.
pub fn parse_all(body: &str) -> Vec<Event> {
    let mut p = Parser::new();
    let mut out: Vec<Event> = body.lines().filter_map(|l| p.line(l)).collect();
    out.extend(p.line(""));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_comments_and_multiline_data() {
        let body = ": ping\n\nid: 1\nevent: message\ndata: {\"a\":\ndata: 1}\n\nretry: 500\ndata:x\r\n\r\n: tail\ndata: last";
        let evs = parse_all(body);
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0].data, "{\"a\":\n1}");
        assert_eq!(evs[0].id.as_deref(), Some("1"));
        assert_eq!(evs[1].data, "x");
        assert_eq!(evs[1].retry_ms, Some(500));
        assert_eq!(evs[2].data, "last");
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        assert!(parse_all("event: x\nid: 3\n\n").is_empty());
        // the 2025-11-25 priming event, then the real message
        let evs = parse_all("id: 7f\ndata: \n\nevent: message\nid: 80\ndata: {}\n\n");
        assert_eq!(evs.len(), 1);
        assert_eq!((evs[0].data.as_str(), evs[0].id.as_deref()), ("{}", Some("80")));
    }
}
