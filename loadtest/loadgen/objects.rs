//! The objects the generator writes (~1 KB ConfigMaps or Pods) and the cheap parsing of what
//! watchers receive: event type, object name and resourceVersion, found by byte search rather than
//! a JSON parse, so the generator spends little CPU per delivery.

use memchr::memmem;
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Configmaps,
    Pods,
}

impl Kind {
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Configmaps => "configmaps",
            Kind::Pods => "pods",
        }
    }
}

/// Names are `lg-<run>-<index>`; `run` keeps runs against the same server apart.
pub struct Naming {
    pub prefix: String,
}

impl Naming {
    pub fn new(run: &str) -> Self {
        Naming {
            prefix: format!("lg-{run}-"),
        }
    }

    pub fn name(&self, idx: u32) -> String {
        format!("{}{idx}", self.prefix)
    }

    /// The object index of `name`, if it is one of this run's objects.
    pub fn index(&self, name: &[u8]) -> Option<u32> {
        let rest = name.strip_prefix(self.prefix.as_bytes())?;
        std::str::from_utf8(rest).ok()?.parse().ok()
    }
}

/// The object as a client sends it. `size` is the approximate size of the served JSON.
pub fn object(
    kind: Kind,
    ns: &str,
    name: &str,
    node: Option<&str>,
    seq: u64,
    size: usize,
    rv: Option<i64>,
) -> Value {
    let pad = "x".repeat(size.saturating_sub(380).max(16));
    let mut v = match kind {
        Kind::Configmaps => json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "labels": {"loadgen": "true"}},
            "data": {"seq": seq.to_string(), "payload": pad},
        }),
        Kind::Pods => json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": {"loadgen": "true"},
                "annotations": {"loadgen/seq": seq.to_string(), "loadgen/payload": pad},
            },
            "spec": {
                "nodeName": node.unwrap_or("node-0"),
                "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
            },
        }),
    };
    if let Some(rv) = rv {
        v["metadata"]["resourceVersion"] = json!(rv.to_string());
    }
    v
}

/// What a watch line carries that the tally needs.
#[derive(Debug, PartialEq, Eq)]
pub struct Line<'a> {
    pub etype: &'a [u8],
    pub name: &'a [u8],
    pub rv: i64,
}

fn quoted_after<'a>(hay: &'a [u8], needle: &[u8]) -> Option<(&'a [u8], usize)> {
    let at = memmem::find(hay, needle)? + needle.len();
    let len = memchr::memchr(b'"', &hay[at..])?;
    Some((&hay[at..at + len], at + len))
}

/// Parses `{"type":"<T>","object":{..."metadata":{"name":"<n>",...,"resourceVersion":"<rv>"...`.
/// kapi writes `type` first and `metadata` before the rest of the object.
pub fn parse_line(line: &[u8]) -> Option<Line<'_>> {
    let (etype, _) = quoted_after(line, b"\"type\":\"")?;
    let meta = memmem::find(line, b"\"metadata\":{")?;
    let m = &line[meta..];
    let (name, _) = quoted_after(m, b"\"name\":\"")?;
    let (rv, _) = quoted_after(m, b"\"resourceVersion\":\"")?;
    let rv = std::str::from_utf8(rv).ok()?.parse().ok()?;
    Some(Line { etype, name, rv })
}

/// Splits a stream of chunks into lines.
#[derive(Default)]
pub struct LineBuf {
    buf: Vec<u8>,
}

impl LineBuf {
    /// Feeds a chunk and calls `f` on every complete line (without its newline).
    pub fn feed(&mut self, chunk: &[u8], mut f: impl FnMut(&[u8])) {
        let mut data = chunk;
        if !self.buf.is_empty() {
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    self.buf.extend_from_slice(&data[..i]);
                    f(&self.buf);
                    self.buf.clear();
                    data = &data[i + 1..];
                }
                None => {
                    self.buf.extend_from_slice(data);
                    return;
                }
            }
        }
        while let Some(i) = memchr::memchr(b'\n', data) {
            f(&data[..i]);
            data = &data[i + 1..];
        }
        self.buf.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kapi_frames() {
        let l = br#"{"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"lg-ab-7","namespace":"loadgen","uid":"u","resourceVersion":"42","labels":{"loadgen":"true"}},"spec":{"containers":[{"name":"c"}]}}}"#;
        let p = parse_line(l).unwrap();
        assert_eq!(p.etype, b"MODIFIED");
        assert_eq!(p.name, b"lg-ab-7");
        assert_eq!(p.rv, 42);
        assert_eq!(Naming::new("ab").index(p.name), Some(7));
        assert_eq!(Naming::new("cd").index(p.name), None);
    }

    #[test]
    fn splits_lines_across_chunks() {
        let mut b = LineBuf::default();
        let mut out: Vec<Vec<u8>> = Vec::new();
        for chunk in [&b"ab"[..], b"c\nde", b"f\n", b"\ng\nh"] {
            b.feed(chunk, |l| out.push(l.to_vec()));
        }
        assert_eq!(
            out,
            vec![b"abc".to_vec(), b"def".to_vec(), vec![], b"g".to_vec()]
        );
    }

    #[test]
    fn objects_are_about_the_requested_size() {
        let v = object(Kind::Pods, "ns", "lg-x-1", Some("node-1"), 1, 1024, Some(5));
        let n = serde_json::to_vec(&v).unwrap().len();
        assert!((700..1100).contains(&n), "{n}");
    }
}
