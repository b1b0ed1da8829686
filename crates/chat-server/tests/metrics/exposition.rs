//! Reading `/metrics`: a parser of the Prometheus text exposition format
//! (`name{label="value",...} value`), so tests compare numbers of named
//! series instead of searching the body for substrings.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

/// A sample's labels, by name.
pub type Labels = BTreeMap<String, String>;

/// One scrape: every sample by name and label set.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    samples: BTreeMap<String, Vec<(Labels, f64)>>,
    /// `# TYPE` lines: metric family name to type.
    pub types: BTreeMap<String, String>,
}

impl Scrape {
    /// Parses an exposition. Panics, naming the line, on anything that is
    /// not a comment, a blank line or a well-formed sample.
    pub fn parse(text: &str) -> Self {
        let mut scrape = Self::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let mut words = comment.split_whitespace();
                if words.next() == Some("TYPE") {
                    if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                        scrape.types.insert(name.to_owned(), kind.to_owned());
                    }
                }
                continue;
            }
            let (name, labels, value) = parse_sample(line)
                .unwrap_or_else(|why| panic!("line {}: {why}: {line:?}", number + 1));
            scrape
                .samples
                .entry(name)
                .or_default()
                .push((labels, value));
        }
        scrape
    }

    /// The value of the series `name` with exactly these labels, if present.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .get(name)?
            .iter()
            .find(|(l, _)| *l == wanted)
            .map(|(_, v)| *v)
    }

    /// [`Scrape::get`], 0 when the series is absent (a counter not yet
    /// incremented).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// The sum over every series of `name` whose labels include these.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .get(name)
            .map(|series| {
                series
                    .iter()
                    .filter(|(l, _)| {
                        labels
                            .iter()
                            .all(|(k, v)| l.get(*k).is_some_and(|x| x == v))
                    })
                    .map(|(_, v)| v)
                    .sum()
            })
            .unwrap_or(0.0)
    }

    /// Whether any series of `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.samples.contains_key(name)
    }

    /// Every label set of `name`.
    pub fn label_sets(&self, name: &str) -> Vec<BTreeMap<String, String>> {
        self.samples
            .get(name)
            .map(|series| series.iter().map(|(l, _)| l.clone()).collect())
            .unwrap_or_default()
    }

    /// Every sample name.
    pub fn names(&self) -> Vec<&str> {
        self.samples.keys().map(String::as_str).collect()
    }
}

/// `name{a="x",b="y"} value [timestamp]`.
fn parse_sample(line: &str) -> Result<(String, BTreeMap<String, String>, f64), String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    let valid_name = name.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
    });
    if name.is_empty() || !valid_name {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let mut fields = rest.split_whitespace();
    let raw = fields.next().ok_or("no value")?;
    let value = match raw {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        other => other.parse().map_err(|_| format!("bad value {other:?}"))?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok((name.to_owned(), labels, value))
}

/// Reads `a="x",b="y"}` (escapes `\\`, `\"`, `\n` in values); returns
/// what follows the `}`.
fn parse_labels<'a>(
    mut rest: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, String> {
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let key = rest[..eq].trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad label name {key:?}"));
        }
        let mut chars = rest[eq + 1..].char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err("label value not quoted".into());
        }
        let mut value = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some(c @ ('\\' | '"')) => value.push(c),
                    other => return Err(format!("bad escape {other:?}")),
                },
                '"' => {
                    end = Some(eq + 1 + i + 1);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.ok_or("unterminated label value")?;
        if labels.insert(key.to_owned(), value).is_some() {
            return Err(format!("label {key} twice"));
        }
        rest = &rest[end..];
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("expected , or }".into());
        }
    }
}

/// The Prometheus text content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET {base_url}/metrics`, checked for status and content type, parsed.
pub async fn scrape(client: &reqwest::Client, base_url: &str) -> Scrape {
    let res = client
        .get(format!("{base_url}/metrics"))
        .send()
        .await
        .expect("metrics request");
    assert_eq!(res.status(), StatusCode::OK, "GET /metrics");
    let content_type = res
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, CONTENT_TYPE);
    Scrape::parse(&res.text().await.expect("metrics body"))
}

/// Scrapes until `done` holds (what is counted after a response or a
/// frame may land a moment later), at most `patience`; the last scrape.
pub async fn scrape_until(
    client: &reqwest::Client,
    base_url: &str,
    patience: Duration,
    done: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let started = Instant::now();
    loop {
        let scrape = scrape(client, base_url).await;
        if done(&scrape) || started.elapsed() > patience {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
