//! The policy expression language of pylon's manifest: per-entity read and write rules
//! over `auth.userId`, `auth.isAdmin`, `auth.hasRole('x')`, `data.<field>`, `old.<field>`,
//! literals, `== != && || !` and parentheses. A rule that does not parse denies
//! everything.
//!
//! `data.<field>` is the row the rule is asked about; `old.<field>` is the row as it was
//! before the write being checked (null for an insert and for reads). pylon's manifests
//! never use `old.`, so they load unchanged; a rule such as
//! `auth.userId == data.owner && data.owner == old.owner` says who may change a row and
//! that the change may not move it to another owner.
//!
//! Precedence, tightest first: `!`, then `==`/`!=`, then `&&`, then `||`; left
//! associative. `==` compares JSON values (numbers numerically, so `1 == 1.0`);
//! `&&`, `||`, `!` use truthiness (false, null, 0 and "" are falsy).

use serde_json::{Map, Value};
use thiserror::Error;

/// Longest accepted rule source, bytes.
pub const MAX_SOURCE: usize = 4096;
/// Deepest accepted nesting of parentheses and `!`.
pub const MAX_DEPTH: usize = 64;

/// Why a rule did not parse.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A character that starts no token.
    #[error("unexpected character {found:?} at {at}")]
    UnexpectedChar {
        /// Byte offset.
        at: usize,
        /// The character.
        found: char,
    },
    /// The rule ended early.
    #[error("unexpected end of rule")]
    UnexpectedEnd,
    /// A token where another was needed.
    #[error("unexpected {found:?} at {at}")]
    UnexpectedToken {
        /// Byte offset.
        at: usize,
        /// The token.
        found: String,
    },
    /// A name the language does not know.
    #[error("unknown name {name:?} at {at}")]
    UnknownIdentifier {
        /// The name.
        name: String,
        /// Byte offset.
        at: usize,
    },
    /// Longer than [`MAX_SOURCE`].
    #[error("rule longer than {MAX_SOURCE} bytes")]
    TooLong,
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("rule nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// What a rule is evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct EvalContext<'a> {
    /// The caller's user id (None: anonymous).
    pub user_id: Option<&'a str>,
    /// Whether the caller is an admin.
    pub is_admin: bool,
    /// The caller's roles.
    pub roles: &'a [String],
    /// The row the rule is asked about.
    pub data: Option<&'a Map<String, Value>>,
    /// The row before the write being checked (`None`: an insert, or a read).
    pub old: Option<&'a Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Lit(Value),
    UserId,
    IsAdmin,
    HasRole(String),
    Data(String),
    Old(String),
    Not(Box<Node>),
    Eq(Box<Node>, Box<Node>, bool),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Num(f64, bool),
    Ident(String),
    Op(&'static str),
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    root: Node,
}

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, PolicyError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let at = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let two = src.get(i..i + 2).unwrap_or("");
        if let Some(op) = ["==", "!=", "&&", "||"].into_iter().find(|op| *op == two) {
            out.push((at, Tok::Op(op)));
            i += 2;
        } else if let Some(op) = ["!", "(", ")", "."].into_iter().find(|op| op.as_bytes()[0] == c) {
            out.push((at, Tok::Op(op)));
            i += 1;
        } else if c == b'\'' || c == b'"' {
            let (s, next) = lex_string(src, i)?;
            out.push((at, Tok::Str(s)));
            i = next;
        } else if c.is_ascii_digit()
            || (c == b'-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            let text = &src[start..i];
            let n: f64 = text
                .parse()
                .map_err(|_| PolicyError::UnexpectedToken { at, found: text.into() })?;
            out.push((at, Tok::Num(n, !text.contains('.'))));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((at, Tok::Ident(src[start..i].into())));
        } else {
            let found = src[i..].chars().next().unwrap_or('?');
            return Err(PolicyError::UnexpectedChar { at, found });
        }
    }
    Ok(out)
}

fn lex_string(src: &str, start: usize) -> Result<(String, usize), PolicyError> {
    let quote = src.as_bytes()[start] as char;
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, other)) => out.push(other),
                None => return Err(PolicyError::UnexpectedEnd),
            },
            c if c == quote => return Ok((out, start + 1 + off + c.len_utf8())),
            c => out.push(c),
        }
    }
    Err(PolicyError::UnexpectedEnd)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn next(&mut self) -> Result<(usize, Tok), PolicyError> {
        let t = self.toks.get(self.pos).cloned().ok_or(PolicyError::UnexpectedEnd)?;
        self.pos += 1;
        Ok(t)
    }

    fn expect(&mut self, op: &'static str) -> Result<(), PolicyError> {
        match self.next()? {
            (_, Tok::Op(o)) if o == op => Ok(()),
            (at, t) => Err(PolicyError::UnexpectedToken { at, found: format!("{t:?}") }),
        }
    }

    fn enter(&mut self) -> Result<(), PolicyError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { Err(PolicyError::TooDeep) } else { Ok(()) }
    }

    fn or(&mut self) -> Result<Node, PolicyError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Op("||")) {
            self.pos += 1;
            left = Node::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, PolicyError> {
        let mut left = self.eq()?;
        while self.peek() == Some(&Tok::Op("&&")) {
            self.pos += 1;
            left = Node::And(Box::new(left), Box::new(self.eq()?));
        }
        Ok(left)
    }

    fn eq(&mut self) -> Result<Node, PolicyError> {
        let mut left = self.unary()?;
        while let Some(Tok::Op(op @ ("==" | "!="))) = self.peek() {
            let equal = *op == "==";
            self.pos += 1;
            left = Node::Eq(Box::new(left), Box::new(self.unary()?), equal);
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, PolicyError> {
        if self.peek() == Some(&Tok::Op("!")) {
            self.pos += 1;
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Node::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node, PolicyError> {
        match self.next()? {
            (_, Tok::Op("(")) => {
                self.enter()?;
                let inner = self.or()?;
                self.expect(")")?;
                self.depth -= 1;
                Ok(inner)
            }
            (_, Tok::Str(s)) => Ok(Node::Lit(Value::String(s))),
            (_, Tok::Num(n, true)) if n.abs() < 9e15 => Ok(Node::Lit(Value::from(n as i64))),
            (at, Tok::Num(n, _)) => serde_json::Number::from_f64(n)
                .map(|n| Node::Lit(Value::Number(n)))
                .ok_or(PolicyError::UnexpectedToken { at, found: n.to_string() }),
            (at, Tok::Ident(name)) => self.ident(at, name),
            (at, t) => Err(PolicyError::UnexpectedToken { at, found: format!("{t:?}") }),
        }
    }

    fn ident(&mut self, at: usize, name: String) -> Result<Node, PolicyError> {
        match name.as_str() {
            "true" => return Ok(Node::Lit(Value::Bool(true))),
            "false" => return Ok(Node::Lit(Value::Bool(false))),
            "null" => return Ok(Node::Lit(Value::Null)),
            "auth" | "data" | "old" => {}
            _ => return Err(PolicyError::UnknownIdentifier { name, at }),
        }
        self.expect(".")?;
        let (mat, member) = match self.next()? {
            (a, Tok::Ident(m)) => (a, m),
            (a, t) => return Err(PolicyError::UnexpectedToken { at: a, found: format!("{t:?}") }),
        };
        match name.as_str() {
            "data" => return Ok(Node::Data(member)),
            "old" => return Ok(Node::Old(member)),
            _ => {}
        }
        match member.as_str() {
            "userId" => Ok(Node::UserId),
            "isAdmin" => Ok(Node::IsAdmin),
            "hasRole" => {
                self.expect("(")?;
                let role = match self.next()? {
                    (_, Tok::Str(s)) => s,
                    (a, t) => {
                        return Err(PolicyError::UnexpectedToken {
                            at: a,
                            found: format!("{t:?}"),
                        });
                    }
                };
                self.expect(")")?;
                Ok(Node::HasRole(role))
            }
            _ => Err(PolicyError::UnknownIdentifier { name: format!("auth.{member}"), at: mat }),
        }
    }
}

impl Expr {
    /// Parses a rule.
    ///
    /// # Errors
    /// [`PolicyError`] for anything that is not a whole, valid expression.
    pub fn parse(src: &str) -> Result<Self, PolicyError> {
        if src.len() > MAX_SOURCE {
            return Err(PolicyError::TooLong);
        }
        let mut p = Parser { toks: lex(src)?, pos: 0, depth: 0 };
        let root = p.or()?;
        if let Some((at, t)) = p.toks.get(p.pos) {
            return Err(PolicyError::UnexpectedToken { at: *at, found: format!("{t:?}") });
        }
        Ok(Self { root })
    }

    /// Whether the expression is truthy for `ctx`.
    #[must_use]
    pub fn eval(&self, ctx: &EvalContext<'_>) -> bool {
        truthy(&value(&self.root, ctx))
    }
}

/// What a rule says about a caller before any row is seen.
#[derive(Debug, Clone, PartialEq)]
pub enum Residual {
    /// Every row passes.
    Always,
    /// No row passes.
    Never,
    /// It depends on the row.
    Depends(Expr),
}

/// The caller's side of an evaluation: everything a rule may read except the rows.
#[derive(Debug, Clone, Copy)]
pub struct CallerFacts<'a> {
    /// The caller's user id (None: anonymous).
    pub user_id: Option<&'a str>,
    /// Whether the caller is an admin.
    pub is_admin: bool,
    /// The caller's roles.
    pub roles: &'a [String],
}

/// A partly evaluated node: a value known from the caller alone, or what is left.
enum Partial {
    Known(Value),
    Left(Node),
}

impl Partial {
    fn node(self) -> Node {
        match self {
            Self::Known(v) => Node::Lit(v),
            Self::Left(n) => n,
        }
    }
}

impl Expr {
    /// Evaluates everything the caller alone decides (`auth.*` and literals), leaving
    /// what depends on the row.
    #[must_use]
    pub fn residual(&self, caller: &CallerFacts<'_>) -> Residual {
        match partial(&self.root, caller) {
            Partial::Known(v) if truthy(&v) => Residual::Always,
            Partial::Known(_) => Residual::Never,
            Partial::Left(root) => Residual::Depends(Self { root }),
        }
    }

    /// The `data.<field> == <literal>` terms this expression requires (its top-level
    /// `&&` terms), and whether they are all it requires: `(terms, exact)`. A store can
    /// answer the terms with an indexed lookup; when `exact` is false, the rows found
    /// must still be checked one by one.
    #[must_use]
    pub fn required_equalities(&self) -> (Vec<(String, Value)>, bool) {
        let mut terms = Vec::new();
        let mut exact = true;
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            match node {
                Node::And(a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                Node::Lit(v) if truthy(v) => {}
                Node::Eq(a, b, true) => match (a.as_ref(), b.as_ref()) {
                    (Node::Data(f), Node::Lit(v)) | (Node::Lit(v), Node::Data(f))
                        if !v.is_null() =>
                    {
                        terms.push((f.clone(), v.clone()));
                    }
                    _ => exact = false,
                },
                _ => exact = false,
            }
        }
        (terms, exact)
    }
}

/// Whether `node` always evaluates to a JSON boolean.
fn boolean(node: &Node) -> bool {
    matches!(node, Node::Not(_) | Node::Eq(..) | Node::And(..) | Node::Or(..))
}

fn partial(node: &Node, caller: &CallerFacts<'_>) -> Partial {
    let known_ctx = EvalContext {
        user_id: caller.user_id,
        is_admin: caller.is_admin,
        roles: caller.roles,
        data: None,
        old: None,
    };
    match node {
        Node::Data(_) | Node::Old(_) => Partial::Left(node.clone()),
        Node::Lit(_) | Node::UserId | Node::IsAdmin | Node::HasRole(_) => {
            Partial::Known(value(node, &known_ctx))
        }
        Node::Not(inner) => match partial(inner, caller) {
            Partial::Known(v) => Partial::Known(Value::Bool(!truthy(&v))),
            Partial::Left(n) => Partial::Left(Node::Not(Box::new(n))),
        },
        Node::Eq(a, b, equal) => match (partial(a, caller), partial(b, caller)) {
            (Partial::Known(x), Partial::Known(y)) => {
                Partial::Known(Value::Bool(same(&x, &y) == *equal))
            }
            (x, y) => Partial::Left(Node::Eq(Box::new(x.node()), Box::new(y.node()), *equal)),
        },
        Node::And(a, b) => match (partial(a, caller), partial(b, caller)) {
            (Partial::Known(x), _) | (_, Partial::Known(x)) if !truthy(&x) => {
                Partial::Known(Value::Bool(false))
            }
            (Partial::Known(_), Partial::Known(_)) => Partial::Known(Value::Bool(true)),
            // `true && x` is x when x is already a boolean.
            (Partial::Known(_), Partial::Left(n)) | (Partial::Left(n), Partial::Known(_))
                if boolean(&n) =>
            {
                Partial::Left(n)
            }
            (x, y) => Partial::Left(Node::And(Box::new(x.node()), Box::new(y.node()))),
        },
        Node::Or(a, b) => match (partial(a, caller), partial(b, caller)) {
            (Partial::Known(x), _) | (_, Partial::Known(x)) if truthy(&x) => {
                Partial::Known(Value::Bool(true))
            }
            (Partial::Known(_), Partial::Known(_)) => Partial::Known(Value::Bool(false)),
            // `false || x` is x when x is already a boolean.
            (Partial::Known(_), Partial::Left(n)) | (Partial::Left(n), Partial::Known(_))
                if boolean(&n) =>
            {
                Partial::Left(n)
            }
            (x, y) => Partial::Left(Node::Or(Box::new(x.node()), Box::new(y.node()))),
        },
    }
}

fn value(node: &Node, ctx: &EvalContext<'_>) -> Value {
    match node {
        Node::Lit(v) => v.clone(),
        Node::UserId => ctx.user_id.map_or(Value::Null, |u| Value::String(u.to_owned())),
        Node::IsAdmin => Value::Bool(ctx.is_admin),
        Node::HasRole(r) => Value::Bool(ctx.roles.iter().any(|x| x == r)),
        Node::Data(f) => ctx.data.and_then(|d| d.get(f)).cloned().unwrap_or(Value::Null),
        Node::Old(f) => ctx.old.and_then(|d| d.get(f)).cloned().unwrap_or(Value::Null),
        Node::Not(inner) => Value::Bool(!truthy(&value(inner, ctx))),
        Node::Eq(a, b, equal) => Value::Bool(same(&value(a, ctx), &value(b, ctx)) == *equal),
        Node::And(a, b) => Value::Bool(truthy(&value(a, ctx)) && truthy(&value(b, ctx))),
        Node::Or(a, b) => Value::Bool(truthy(&value(a, ctx)) || truthy(&value(b, ctx))),
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// A compiled rule; a source that does not parse denies everything.
#[derive(Debug, Clone)]
pub struct Rule {
    source: String,
    parsed: Result<Expr, PolicyError>,
}

impl Rule {
    /// Compiles `src` (never fails: see [`Rule::error`]).
    #[must_use]
    pub fn parse(src: &str) -> Self {
        Self { source: src.to_owned(), parsed: Expr::parse(src) }
    }

    /// Whether the rule allows `ctx`.
    #[must_use]
    pub fn allows(&self, ctx: &EvalContext<'_>) -> bool {
        self.parsed.as_ref().is_ok_and(|e| e.eval(ctx))
    }

    /// What the rule says about `caller` before any row is seen (a rule that did not
    /// parse: [`Residual::Never`]).
    #[must_use]
    pub fn residual(&self, caller: &CallerFacts<'_>) -> Residual {
        self.parsed.as_ref().map_or(Residual::Never, |e| e.residual(caller))
    }

    /// Why the rule did not parse, if it did not.
    #[must_use]
    pub fn error(&self) -> Option<&PolicyError> {
        self.parsed.as_ref().err()
    }

    /// The rule's source text.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx<'a>(
        user: Option<&'a str>,
        data: &'a Map<String, Value>,
        roles: &'a [String],
    ) -> EvalContext<'a> {
        EvalContext { user_id: user, is_admin: false, roles, data: Some(data), old: None }
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    /// Owner rules, admin overrides, roles and anonymous callers.
    #[test]
    fn owner_admin_roles_anonymous() {
        let row = map(json!({"owner": "ada", "n": 1}));
        let owner = Rule::parse("auth.userId == data.owner");
        assert!(owner.allows(&ctx(Some("ada"), &row, &[])));
        assert!(!owner.allows(&ctx(Some("bob"), &row, &[])));
        assert!(!owner.allows(&ctx(None, &row, &[])), "anonymous is not the owner");
        assert!(!Rule::parse("auth.userId != null").allows(&ctx(None, &row, &[])));
        let admin = Rule::parse("auth.isAdmin || auth.userId == data.owner");
        assert!(admin.allows(&EvalContext {
            user_id: Some("x"),
            is_admin: true,
            roles: &[],
            data: Some(&row),
            old: None,
        }));
        let roles = ["mod".to_owned()];
        assert!(Rule::parse("auth.hasRole('mod') && !auth.hasRole(\"ban\")").allows(&ctx(
            Some("x"),
            &row,
            &roles
        )));
    }

    /// Precedence, parentheses and numbers across int and float.
    #[test]
    fn precedence_and_numbers() {
        let row = map(json!({"n": 1, "f": 1.0}));
        let c = ctx(None, &row, &[]);
        assert!(Expr::parse("true || false && false").unwrap().eval(&c));
        assert!(!Expr::parse("(true || false) && false").unwrap().eval(&c));
        assert!(Expr::parse("!true == false").unwrap().eval(&c));
        assert!(
            Expr::parse("data.n == data.f && data.n == 1.0 && data.missing == null")
                .unwrap()
                .eval(&c)
        );
        assert!(!Expr::parse("'' || 0 || null").unwrap().eval(&c));
    }

    /// `old.` reads the row before the write; it is null where there is none.
    #[test]
    fn old_fields() {
        let before = map(json!({"owner": "ada"}));
        let after = map(json!({"owner": "bob"}));
        let rule = Rule::parse("auth.userId == data.owner && data.owner == old.owner");
        let ctx = |data, old| EvalContext {
            user_id: Some("ada"),
            is_admin: false,
            roles: &[],
            data: Some(data),
            old,
        };
        assert!(rule.allows(&ctx(&before, Some(&before))));
        assert!(!rule.allows(&ctx(&after, Some(&before))));
        assert!(!rule.allows(&ctx(&before, None)), "no old row: old.owner is null");
    }

    /// Partial evaluation: what the caller decides is folded away, what the row decides
    /// is left, and an owner rule yields its indexed equality.
    #[test]
    fn residuals() {
        let facts = |user| CallerFacts { user_id: user, is_admin: false, roles: &[] };
        let owner = Rule::parse("auth.isAdmin || auth.userId == data.owner");
        let Residual::Depends(left) = owner.residual(&facts(Some("ada"))) else { panic!() };
        assert_eq!(left.required_equalities(), (vec![("owner".into(), json!("ada"))], true));
        assert_eq!(Rule::parse("true").residual(&facts(None)), Residual::Always);
        assert_eq!(Rule::parse("auth.userId != null").residual(&facts(None)), Residual::Never);
        assert_eq!(
            Rule::parse("auth.userId != null").residual(&facts(Some("x"))),
            Residual::Always
        );
        assert_eq!(Rule::parse("(").residual(&facts(Some("x"))), Residual::Never);
        let mixed = Rule::parse("data.public == true || auth.userId == data.owner");
        let Residual::Depends(left) = mixed.residual(&facts(Some("ada"))) else { panic!() };
        assert_eq!(left.required_equalities(), (vec![], false));
        let both = Rule::parse("auth.userId == data.owner && data.kind == 'a' && !data.gone");
        let Residual::Depends(left) = both.residual(&facts(Some("ada"))) else { panic!() };
        let (terms, exact) = left.required_equalities();
        assert_eq!(terms.len(), 2);
        assert!(!exact, "`!data.gone` is checked per row");
        // The residual agrees with full evaluation on rows.
        let row = map(json!({"owner": "ada", "kind": "a", "gone": false}));
        assert!(left.eval(&EvalContext {
            user_id: None,
            is_admin: false,
            roles: &[],
            data: Some(&row),
            old: None
        }));
    }

    /// Every kind of malformed rule is an error that denies, never a panic.
    #[test]
    fn malformed_rules_deny() {
        let row = map(json!({}));
        let c = ctx(Some("ada"), &row, &[]);
        for bad in [
            "",
            "auth.",
            "auth.name",
            "foo",
            "(true",
            "true)",
            "'open",
            "1 +",
            "data.",
            "auth.hasRole(1)",
            "a$b",
            "true true",
        ] {
            let rule = Rule::parse(bad);
            assert!(rule.error().is_some(), "{bad:?} parsed");
            assert!(!rule.allows(&c));
        }
        assert_eq!(Expr::parse(&"x".repeat(5000)), Err(PolicyError::TooLong));
        let deep = format!("{}true{}", "(".repeat(100), ")".repeat(100));
        assert_eq!(Expr::parse(&deep), Err(PolicyError::TooDeep));
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5000 {
            let len = (state % 40) as usize;
            let s: String = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    char::from(b" ()!=&|'\"a.1dtuhx"[(state % 17) as usize])
                })
                .collect();
            let _ = Rule::parse(&s).allows(&c);
        }
    }
}
