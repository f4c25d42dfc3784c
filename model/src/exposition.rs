//! A strict reader of the Prometheus text exposition (format 0.0.4), for tests: the elector's
//! own unit tests and the real-process tests read `/metrics` with it, so that a malformed line
//! fails a test instead of being skipped. Not part of the product, which only writes the
//! format.

use std::collections::HashMap;

/// Labels of a sample: name and value, in order.
pub type Labels = Vec<(String, String)>;

/// One sample of the text exposition: name, labels, value.
pub type Sample = (String, Labels, f64);

/// The value of the first sample named `name` that carries every label in `labels` (and
/// perhaps more), as read by [`parse_exposition`].
pub fn sample_value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| *v)
}

/// Reads a Prometheus text exposition strictly: every line is a `# HELP`, a `# TYPE` or a
/// sample (`name{label="value",...} number`) of a family whose `# TYPE` came first, declared
/// once. For tests (here and against a running elector), and for tools.
pub fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let bad = |why: &str| format!("line {}: {why}: {line:?}", number + 1);
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("HELP"), Some(name), _) if valid_name(name) => {}
                (Some("TYPE"), Some(name), Some(kind)) if valid_name(name) => {
                    if !matches!(
                        kind,
                        "counter" | "gauge" | "histogram" | "summary" | "untyped"
                    ) {
                        return Err(bad("unknown type"));
                    }
                    if types.insert(name.to_string(), kind.to_string()).is_some() {
                        return Err(bad("family declared twice"));
                    }
                }
                (Some("HELP" | "TYPE"), _, _) => return Err(bad("malformed HELP or TYPE")),
                _ => {}
            }
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(at) => line.split_at(at),
            None => return Err(bad("no value")),
        };
        if !valid_name(name) {
            return Err(bad("bad metric name"));
        }
        let (labels, rest) = match rest.strip_prefix('{') {
            Some(inner) => parse_labels(inner).map_err(|why| bad(&why))?,
            None => (Vec::new(), rest),
        };
        let mut fields = rest.trim_start_matches(' ').split(' ');
        let value = match fields.next() {
            Some("+Inf") => f64::INFINITY,
            Some("-Inf") => f64::NEG_INFINITY,
            Some(v) => v.parse::<f64>().map_err(|_| bad("bad value"))?,
            None => return Err(bad("no value")),
        };
        if let Some(stamp) = fields.next()
            && stamp.parse::<i64>().is_err()
        {
            return Err(bad("bad timestamp"));
        }
        if fields.next().is_some() {
            return Err(bad("trailing text"));
        }
        let family = types.get(name).map(|_| name).or_else(|| {
            ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
                name.strip_suffix(suffix).filter(|base| {
                    types
                        .get(*base)
                        .is_some_and(|k| k == "histogram" || k == "summary")
                })
            })
        });
        if family.is_none() {
            return Err(bad("sample without a # TYPE before it"));
        }
        samples.push((name.to_string(), labels, value));
    }
    Ok(samples)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Labels after `{`, up to and including `}`; returns them and the rest of the line.
fn parse_labels(mut text: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        if let Some(rest) = text.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let (name, rest) = text.split_once("=\"").ok_or("bad label")?;
        if !valid_name(name) || name.contains(':') {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => return Err("bad escape in a label value".into()),
                },
                Some((at, '"')) => break at,
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        labels.push((name.to_string(), value));
        text = &rest[end + 1..];
        text = text.strip_prefix(',').unwrap_or(text);
    }
}
