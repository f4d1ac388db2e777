//! A JSON document as a tree that can also hold what `serde_json::Value` cannot: duplicate
//! keys, numbers of any size and tokens that are not JSON at all. Mutations change it the way
//! a broken or hostile sender would.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    /// A number token as written, whatever its size.
    Number(String),
    Text(String),
    /// Written as it is: a broken token, a stray comma...
    Raw(String),
    Array(Vec<Node>),
    /// Members in order; a key may repeat.
    Object(Vec<(String, Node)>),
}

impl From<&Value> for Node {
    fn from(value: &Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => Self::Number(n.to_string()),
            Value::String(s) => Self::Text(s.clone()),
            Value::Array(items) => Self::Array(items.iter().map(Self::from).collect()),
            Value::Object(members) => Self::Object(members.iter().map(|(k, v)| (k.clone(), Self::from(v))).collect()),
        }
    }
}

impl Node {
    pub fn parse(json: &str) -> Self {
        Self::from(&serde_json::from_str::<Value>(json).expect("a seed is JSON"))
    }

    pub fn write(&self) -> String {
        let mut out = String::new();
        self.write_to(&mut out);
        out
    }

    fn write_to(&self, out: &mut String) {
        match self {
            Self::Null => out.push_str("null"),
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Number(n) | Self::Raw(n) => out.push_str(n),
            Self::Text(s) => out.push_str(&quoted(s)),
            Self::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_to(out);
                }
                out.push(']');
            }
            Self::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&quoted(key));
                    out.push(':');
                    value.write_to(out);
                }
                out.push('}');
            }
        }
    }

    fn children_mut(&mut self) -> Vec<&mut Node> {
        match self {
            Self::Array(items) => items.iter_mut().collect(),
            Self::Object(members) => members.iter_mut().map(|(_, v)| v).collect(),
            _ => Vec::new(),
        }
    }

    fn members(&self) -> usize {
        match self {
            Self::Array(items) => items.len(),
            Self::Object(members) => members.len(),
            _ => 0,
        }
    }

    /// Every node in pre-order, as the child indices that lead to it.
    fn paths(&self) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        let mut stack = vec![(self, Vec::new())];
        while let Some((node, path)) = stack.pop() {
            let children: Vec<&Node> = match node {
                Self::Array(items) => items.iter().collect(),
                Self::Object(members) => members.iter().map(|(_, v)| v).collect(),
                _ => Vec::new(),
            };
            for (i, child) in children.into_iter().enumerate().rev() {
                let mut p = path.clone();
                p.push(i);
                stack.push((child, p));
            }
            out.push(path);
        }
        out
    }

    fn at_mut(&mut self, path: &[usize]) -> &mut Node {
        let mut node = self;
        for &i in path {
            node = node.children_mut().swap_remove(i);
        }
        node
    }

    /// The `pick`th node (modulo their number) that `wanted` accepts, if any.
    fn pick_mut(&mut self, pick: usize, wanted: impl Fn(&Node) -> bool) -> Option<&mut Node> {
        let paths: Vec<Vec<usize>> = {
            let all = self.paths();
            let this = &*self;
            all.into_iter().filter(|p| wanted(walk(this, p))).collect()
        };
        let path = paths.get(pick % paths.len().max(1))?.clone();
        Some(self.at_mut(&path))
    }

    pub fn apply(&mut self, m: &Mutation) {
        match m {
            Mutation::Replace { at, with } => {
                if let Some(n) = self.pick_mut(*at, |_| true) {
                    *n = with.clone();
                }
            }
            Mutation::Retype { at, how } => {
                if let Some(n) = self.pick_mut(*at, |_| true) {
                    *n = retyped(std::mem::replace(n, Self::Null), *how);
                }
            }
            Mutation::Nest { at, depth, in_object } => {
                if let Some(n) = self.pick_mut(*at, |_| true) {
                    let mut inner = std::mem::replace(n, Self::Null);
                    for _ in 0..*depth {
                        inner = if *in_object {
                            Self::Object(vec![("value".into(), inner)])
                        } else {
                            Self::Array(vec![inner])
                        };
                    }
                    *n = inner;
                }
            }
            Mutation::Remove { at, member } => {
                if let Some(n) = self.pick_mut(*at, |n| n.members() > 0) {
                    let i = member % n.members();
                    match n {
                        Self::Array(items) => drop(items.remove(i)),
                        Self::Object(members) => drop(members.remove(i)),
                        _ => {}
                    }
                }
            }
            Mutation::Repeat { at, member, times } => {
                if let Some(n) = self.pick_mut(*at, |n| n.members() > 0) {
                    let i = member % n.members();
                    match n {
                        Self::Array(items) => {
                            let copy = items[i].clone();
                            items.splice(i..i, std::iter::repeat_n(copy, *times));
                        }
                        Self::Object(members) => {
                            let copy = members[i].clone();
                            members.splice(i..i, std::iter::repeat_n(copy, *times));
                        }
                        _ => {}
                    }
                }
            }
            Mutation::Insert { at, key, value } => {
                if let Some(n) = self.pick_mut(*at, |n| matches!(n, Self::Array(_) | Self::Object(_))) {
                    match n {
                        Self::Array(items) => items.insert(key.len() % (items.len() + 1), value.clone()),
                        Self::Object(members) => members.push((key.clone(), value.clone())),
                        _ => {}
                    }
                }
            }
            Mutation::Rename { at, member, how } => {
                if let Some(Self::Object(members)) =
                    self.pick_mut(*at, |n| matches!(n, Self::Object(m) if !m.is_empty()))
                {
                    let i = member % members.len();
                    members[i].0 = how.apply(&members[i].0);
                }
            }
        }
    }
}

fn walk<'a>(mut node: &'a Node, path: &[usize]) -> &'a Node {
    for &i in path {
        node = match node {
            Node::Array(items) => &items[i],
            Node::Object(members) => &members[i].1,
            _ => unreachable!("paths lead through containers"),
        };
    }
    node
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// The same content as another JSON type, or wrapped.
fn retyped(node: Node, how: u8) -> Node {
    match (node, how % 4) {
        (Node::Text(s), 0) => Node::Raw(s),
        (Node::Number(n), 0) => Node::Text(n),
        (Node::Bool(b), 0) => Node::Text(if b { "True".into() } else { "FALSE".into() }),
        (Node::Null, 0) => Node::Text(String::new()),
        (Node::Array(items), 0) => {
            Node::Object(items.into_iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect())
        }
        (Node::Object(members), 0) => Node::Array(members.into_iter().map(|(_, v)| v).collect()),
        (n, 1) => Node::Array(vec![n]),
        (n, 2) => Node::Object(vec![("value".into(), n)]),
        (n, _) => Node::Text(n.write()),
    }
}

/// How a key is changed: what a careless or malicious sender does to a name.
#[derive(Debug, Clone)]
pub enum Rename {
    Upper,
    Lower,
    /// ASCII letters swapped for Cyrillic or Greek ones that look the same.
    LookAlike,
    /// A character added at the end: a space, a NUL, a zero-width space.
    Suffix(char),
    To(String),
}

impl Rename {
    fn apply(&self, key: &str) -> String {
        match self {
            Self::Upper => key.to_uppercase(),
            Self::Lower => key.to_lowercase(),
            Self::LookAlike => key.chars().map(look_alike).collect(),
            Self::Suffix(c) => format!("{key}{c}"),
            Self::To(other) => other.clone(),
        }
    }
}

pub fn look_alike(c: char) -> char {
    match c {
        'a' => '\u{430}',
        'c' => '\u{441}',
        'e' => '\u{435}',
        'i' => '\u{456}',
        'o' => '\u{43e}',
        'p' => '\u{440}',
        'x' => '\u{445}',
        'y' => '\u{443}',
        'A' => '\u{391}',
        'B' => '\u{392}',
        'E' => '\u{395}',
        'H' => '\u{397}',
        'N' => '\u{39d}',
        'O' => '\u{39f}',
        'P' => '\u{3a1}',
        'T' => '\u{3a4}',
        '0'..='9' => char::from_u32(u32::from(c) - 0x30 + 0xff10).unwrap_or(c),
        other => other,
    }
}

/// A structural change; `at` and `member` pick a node and a member modulo what there is.
#[derive(Debug, Clone)]
pub enum Mutation {
    Replace {
        at: usize,
        with: Node,
    },
    Retype {
        at: usize,
        how: u8,
    },
    Nest {
        at: usize,
        depth: usize,
        in_object: bool,
    },
    Remove {
        at: usize,
        member: usize,
    },
    /// Copies of a member next to it: duplicate keys in an object.
    Repeat {
        at: usize,
        member: usize,
        times: usize,
    },
    Insert {
        at: usize,
        key: String,
        value: Node,
    },
    Rename {
        at: usize,
        member: usize,
        how: Rename,
    },
}

/// A change to the written text, after the structure.
#[derive(Debug, Clone)]
pub enum Splice {
    Cut(usize),
    Insert(usize, Vec<u8>),
    Overwrite(usize, u8),
}

impl Splice {
    pub fn apply(&self, text: &mut Vec<u8>) {
        let at = |i: usize, len: usize| i % (len + 1);
        match self {
            Self::Cut(i) => text.truncate(at(*i, text.len())),
            Self::Insert(i, bytes) => {
                let i = at(*i, text.len());
                text.splice(i..i, bytes.iter().copied());
            }
            Self::Overwrite(i, b) => {
                if !text.is_empty() {
                    let i = i % text.len();
                    text[i] = *b;
                }
            }
        }
    }
}

/// A seed document, changed by `mutations` and then its text by `splices`.
#[derive(Debug, Clone)]
pub struct Hostile {
    pub seed: usize,
    pub mutations: Vec<Mutation>,
    pub splices: Vec<Splice>,
}

impl Hostile {
    pub fn render(&self, seeds: &[Node]) -> Vec<u8> {
        let mut doc = seeds[self.seed % seeds.len()].clone();
        for m in &self.mutations {
            doc.apply(m);
        }
        let mut text = doc.write().into_bytes();
        for s in &self.splices {
            s.apply(&mut text);
        }
        text
    }
}
