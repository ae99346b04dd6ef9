//! `pylon.manifest.json`, pylon's format, so existing apps load unchanged: entities with
//! typed fields, indexes and relations, and policies. Parsed by hand from JSON so that
//! unknown keys become warnings (with their path) instead of errors.

use std::path::Path;

use serde_json::{Map, Value};
use thiserror::Error;

/// Most entities in a manifest.
pub const MAX_ENTITIES: usize = 256;
/// Most fields per entity.
pub const MAX_FIELDS: usize = 256;
/// Most indexes per entity.
pub const MAX_INDEXES: usize = 64;
/// Longest entity, field or index name.
pub const MAX_NAME: usize = 64;

/// A loaded manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// App name.
    pub name: String,
    /// App version.
    pub version: String,
    /// Entities, in declaration order.
    pub entities: Vec<EntityDef>,
    /// Policies.
    pub policies: Vec<PolicyDef>,
    /// The JSON text it was parsed from (a database records it when migrated to it, so
    /// later commands without `PYLON_MANIFEST` use the same one).
    pub source: String,
}

/// One entity (table).
#[derive(Debug, Clone, PartialEq)]
pub struct EntityDef {
    /// Name.
    pub name: String,
    /// Fields besides `id`.
    pub fields: Vec<FieldDef>,
    /// Indexes.
    pub indexes: Vec<IndexDef>,
    /// Relations, kept as written (not interpreted yet).
    pub relations: Vec<Value>,
}

/// One field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDef {
    /// Name.
    pub name: String,
    /// Type.
    pub ty: FieldType,
    /// May be null or missing.
    pub optional: bool,
    /// Values are unique across rows.
    pub unique: bool,
}

/// Field types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    /// Text.
    String,
    /// 64-bit integer.
    Int,
    /// 64-bit float.
    Float,
    /// Boolean.
    Bool,
    /// RFC 3339 timestamp (text).
    Datetime,
    /// Long text.
    Richtext,
    /// The id of a row of the named entity.
    Id(String),
}

/// One index.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDef {
    /// Name.
    pub name: String,
    /// Fields, in order.
    pub fields: Vec<String>,
    /// Unique.
    pub unique: bool,
}

/// One policy: rule sources per operation (compiled by the API).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDef {
    /// Name.
    pub name: String,
    /// Entity it governs.
    pub entity: String,
    /// Everything.
    pub allow: Option<String>,
    /// Reads.
    pub allow_read: Option<String>,
    /// Inserts.
    pub allow_insert: Option<String>,
    /// Updates.
    pub allow_update: Option<String>,
    /// Deletes.
    pub allow_delete: Option<String>,
    /// Inserts, updates and deletes.
    pub allow_write: Option<String>,
}

/// Why a manifest was refused. Messages name the entity and field.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not JSON.
    #[error("manifest is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The file could not be read.
    #[error("cannot read manifest {path}: {error}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        error: std::io::Error,
    },
    /// A structural problem at `path`.
    #[error("manifest {path}: {message}")]
    Invalid {
        /// Where (`entities[1].fields[0].type`).
        path: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(path: &str, message: impl Into<String>) -> ManifestError {
    ManifestError::Invalid { path: path.to_owned(), message: message.into() }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= MAX_NAME
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads an object's keys, warning about the ones not in `known`.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    fn new(
        v: &'a Value,
        path: &str,
        known: &[&str],
        warnings: &mut Vec<String>,
    ) -> Result<Self, ManifestError> {
        let map = v.as_object().ok_or_else(|| invalid(path, "expected an object"))?;
        for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
            warnings.push(format!("{path}.{key}: unknown key ignored"));
        }
        Ok(Self { map, path: path.to_owned() })
    }

    fn str(&self, key: &str) -> Result<String, ManifestError> {
        self.opt_str(key)?
            .ok_or_else(|| invalid(&format!("{}.{key}", self.path), "required string"))
    }

    fn opt_str(&self, key: &str) -> Result<Option<String>, ManifestError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(&format!("{}.{key}", self.path), "expected a string")),
        }
    }

    fn bool(&self, key: &str) -> Result<bool, ManifestError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(invalid(&format!("{}.{key}", self.path), "expected true or false")),
        }
    }

    fn array(&self, key: &str) -> Result<&'a [Value], ManifestError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(invalid(&format!("{}.{key}", self.path), "expected an array")),
        }
    }
}

impl Manifest {
    /// Parses and validates; returns the manifest and warnings (unknown keys, by path).
    ///
    /// # Errors
    /// [`ManifestError`] naming where the problem is.
    pub fn parse(json: &str) -> Result<(Self, Vec<String>), ManifestError> {
        let root: Value = serde_json::from_str(json)?;
        let mut warnings = Vec::new();
        let top = Obj::new(
            &root,
            "manifest",
            &["manifest_version", "name", "version", "entities", "policies", "$schema"],
            &mut warnings,
        )?;
        match top.map.get("manifest_version").and_then(Value::as_u64) {
            Some(1) => {}
            other => {
                return Err(invalid(
                    "manifest.manifest_version",
                    format!("must be 1, got {other:?}"),
                ));
            }
        }
        let raw_entities = top.array("entities")?;
        if raw_entities.len() > MAX_ENTITIES {
            return Err(invalid("manifest.entities", format!("at most {MAX_ENTITIES} entities")));
        }
        let mut entities = Vec::new();
        for (i, e) in raw_entities.iter().enumerate() {
            let entity = parse_entity(e, &format!("entities[{i}]"), &mut warnings)?;
            if entities.iter().any(|x: &EntityDef| x.name == entity.name) {
                return Err(invalid(
                    &format!("entities[{i}]"),
                    format!("duplicate entity {}", entity.name),
                ));
            }
            entities.push(entity);
        }
        let mut manifest = Self {
            name: top.opt_str("name")?.unwrap_or_default(),
            version: top.opt_str("version")?.unwrap_or_default(),
            entities,
            policies: Vec::new(),
            source: json.to_owned(),
        };
        for (i, p) in top.array("policies")?.iter().enumerate() {
            let policy = parse_policy(p, &format!("policies[{i}]"), &mut warnings)?;
            if manifest.entity(&policy.entity).is_none() {
                return Err(invalid(
                    &format!("policies[{i}].entity"),
                    format!("policy {} names unknown entity {}", policy.name, policy.entity),
                ));
            }
            manifest.policies.push(policy);
        }
        manifest.check_references()?;
        Ok((manifest, warnings))
    }

    /// Reads and parses a manifest file.
    ///
    /// # Errors
    /// [`ManifestError::Io`] naming the path, or a parse error.
    pub fn load(path: &Path) -> Result<(Self, Vec<String>), ManifestError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ManifestError::Io { path: path.display().to_string(), error })?;
        Self::parse(&text)
    }

    /// The entity named `name`.
    #[must_use]
    pub fn entity(&self, name: &str) -> Option<&EntityDef> {
        self.entities.iter().find(|e| e.name == name)
    }

    fn check_references(&self) -> Result<(), ManifestError> {
        for e in &self.entities {
            for f in &e.fields {
                if let FieldType::Id(target) = &f.ty
                    && self.entity(target).is_none()
                {
                    return Err(invalid(
                        &format!("{}.{}", e.name, f.name),
                        format!("id({target}) names no entity"),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn parse_entity(
    v: &Value,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<EntityDef, ManifestError> {
    let o = Obj::new(v, path, &["name", "fields", "indexes", "relations"], warnings)?;
    let name = o.str("name")?;
    if !valid_name(&name) {
        return Err(invalid(
            &format!("{path}.name"),
            format!(
                "{name:?} is not a valid name (a letter, then letters, digits or _; at most {MAX_NAME})"
            ),
        ));
    }
    let raw_fields = o.array("fields")?;
    if raw_fields.len() > MAX_FIELDS {
        return Err(invalid(
            &format!("{path}.fields"),
            format!("{name}: at most {MAX_FIELDS} fields"),
        ));
    }
    let mut fields: Vec<FieldDef> = Vec::new();
    for (i, f) in raw_fields.iter().enumerate() {
        let fpath = format!("{path}.fields[{i}]");
        let fo = Obj::new(f, &fpath, &["name", "type", "optional", "unique"], warnings)?;
        let fname = fo.str("name")?;
        if !valid_name(&fname) || fname == "id" {
            return Err(invalid(
                &fpath,
                format!("{name}.{fname}: not a valid field name (`id` is reserved)"),
            ));
        }
        if fields.iter().any(|x| x.name == fname) {
            return Err(invalid(&fpath, format!("{name}.{fname}: duplicate field")));
        }
        let ty_src = fo.str("type")?;
        let ty = FieldType::parse(&ty_src).ok_or_else(|| {
            invalid(&format!("{fpath}.type"), format!("{name}.{fname}: unknown type {ty_src:?}"))
        })?;
        fields.push(FieldDef {
            name: fname,
            ty,
            optional: fo.bool("optional")?,
            unique: fo.bool("unique")?,
        });
    }
    let indexes = parse_indexes(&o, &name, &fields, path, warnings)?;
    Ok(EntityDef { name, fields, indexes, relations: o.array("relations")?.to_vec() })
}

fn parse_indexes(
    o: &Obj<'_>,
    name: &str,
    fields: &[FieldDef],
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<IndexDef>, ManifestError> {
    let raw_indexes = o.array("indexes")?;
    if raw_indexes.len() > MAX_INDEXES {
        return Err(invalid(
            &format!("{path}.indexes"),
            format!("{name}: at most {MAX_INDEXES} indexes"),
        ));
    }
    let mut indexes = Vec::new();
    for (i, ix) in raw_indexes.iter().enumerate() {
        let ipath = format!("{path}.indexes[{i}]");
        let io = Obj::new(ix, &ipath, &["name", "fields", "unique"], warnings)?;
        let iname = io.str("name")?;
        if !valid_name(&iname) {
            return Err(invalid(&ipath, format!("{name}: index name {iname:?} is not valid")));
        }
        let mut cols = Vec::new();
        for c in io.array("fields")? {
            let c = c.as_str().ok_or_else(|| invalid(&ipath, "index fields are strings"))?;
            if c != "id" && !fields.iter().any(|f| f.name == c) {
                return Err(invalid(
                    &ipath,
                    format!("{name}: index {iname} names unknown field {c}"),
                ));
            }
            cols.push(c.to_owned());
        }
        if cols.is_empty() {
            return Err(invalid(&ipath, format!("{name}: index {iname} has no fields")));
        }
        indexes.push(IndexDef { name: iname, fields: cols, unique: io.bool("unique")? });
    }
    Ok(indexes)
}

fn parse_policy(
    v: &Value,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<PolicyDef, ManifestError> {
    let keys = [
        "name",
        "entity",
        "allow",
        "allowRead",
        "allowInsert",
        "allowUpdate",
        "allowDelete",
        "allowWrite",
    ];
    let o = Obj::new(v, path, &keys, warnings)?;
    Ok(PolicyDef {
        name: o.opt_str("name")?.unwrap_or_default(),
        entity: o.str("entity")?,
        allow: o.opt_str("allow")?,
        allow_read: o.opt_str("allowRead")?,
        allow_insert: o.opt_str("allowInsert")?,
        allow_update: o.opt_str("allowUpdate")?,
        allow_delete: o.opt_str("allowDelete")?,
        allow_write: o.opt_str("allowWrite")?,
    })
}

impl EntityDef {
    /// The field named `name`.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }
}

impl FieldType {
    /// Parses `string`, `int`, …, `id(Entity)`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "string" => Self::String,
            "int" => Self::Int,
            "float" => Self::Float,
            "bool" => Self::Bool,
            "datetime" => Self::Datetime,
            "richtext" => Self::Richtext,
            other => {
                let target = other.strip_prefix("id(")?.strip_suffix(')')?.trim();
                if !valid_name(target) {
                    return None;
                }
                Self::Id(target.to_owned())
            }
        })
    }

    /// The manifest spelling.
    #[must_use]
    pub fn as_str(&self) -> String {
        match self {
            Self::String => "string".into(),
            Self::Int => "int".into(),
            Self::Float => "float".into(),
            Self::Bool => "bool".into(),
            Self::Datetime => "datetime".into(),
            Self::Richtext => "richtext".into(),
            Self::Id(t) => format!("id({t})"),
        }
    }
}

/// Checks one value against its field: the normalized value, or why not.
///
/// # Errors
/// A short reason (the caller names the field).
pub fn check_value(field: &FieldDef, value: &Value) -> Result<Value, String> {
    if value.is_null() {
        return if field.optional { Ok(Value::Null) } else { Err("required".into()) };
    }
    match (&field.ty, value) {
        (FieldType::String | FieldType::Richtext, Value::String(_))
        | (FieldType::Bool, Value::Bool(_)) => Ok(value.clone()),
        (FieldType::Int, Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(Value::from(i)),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => {
                Ok(Value::from(f as i64))
            }
            _ => Err(format!("expected an integer within 64 bits, got {n}")),
        },
        (FieldType::Float, Value::Number(n)) => {
            n.as_f64().map(Value::from).ok_or_else(|| "expected a number".into())
        }
        (FieldType::Datetime, Value::String(s)) if is_rfc3339(s) => Ok(value.clone()),
        (FieldType::Datetime, _) => {
            Err("expected an RFC 3339 timestamp like 2026-11-25T10:00:00Z".into())
        }
        (FieldType::Id(target), Value::String(s)) if !s.is_empty() => {
            let _ = target;
            Ok(value.clone())
        }
        (ty, _) => Err(format!("expected {}", ty.as_str())),
    }
}

fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
    {
        return false;
    }
    if !matches!(b[10], b'T' | b't' | b' ')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use serde_json::json;

    /// The bundled example loads without warnings.
    #[test]
    fn example_manifest_parses() {
        let text = include_str!("../../examples/pylon.manifest.json");
        let (m, warnings) = Manifest::parse(text).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(m.entity("MatchResult").is_some());
    }

    /// Unknown keys warn with their path; structural errors name entity and field.
    #[test]
    fn warnings_and_errors() {
        let (_, w) = Manifest::parse(r#"{"manifest_version":1,"x":1,"entities":[{"name":"A","fields":[{"name":"f","type":"int","color":"red"}]}]}"#).unwrap();
        assert_eq!(
            w,
            ["manifest.x: unknown key ignored", "entities[0].fields[0].color: unknown key ignored"]
        );
        let bad = [
            (r#"{"manifest_version":2,"entities":[]}"#, "manifest_version"),
            (
                r#"{"manifest_version":1,"entities":[{"name":"A","fields":[{"name":"f","type":"blob"}]}]}"#,
                "A.f",
            ),
            (
                r#"{"manifest_version":1,"entities":[{"name":"A","fields":[{"name":"f","type":"id(B)"}]}]}"#,
                "id(B)",
            ),
            (
                r#"{"manifest_version":1,"entities":[{"name":"A","fields":[{"name":"id","type":"int"}]}]}"#,
                "A.id",
            ),
            (
                r#"{"manifest_version":1,"entities":[{"name":"A","fields":[{"name":"f","type":"int"},{"name":"f","type":"int"}]}]}"#,
                "duplicate",
            ),
            (
                r#"{"manifest_version":1,"entities":[{"name":"A","fields":[]},{"name":"A","fields":[]}]}"#,
                "duplicate entity",
            ),
            (
                r#"{"manifest_version":1,"entities":[{"name":"A","fields":[],"indexes":[{"name":"i","fields":["nope"]}]}]}"#,
                "nope",
            ),
            (r#"{"manifest_version":1,"entities":[],"policies":[{"name":"p","entity":"Z"}]}"#, "Z"),
            (r#"{"manifest_version":1,"entities":[{"name":"1A","fields":[]}]}"#, "1A"),
        ];
        for (json, needle) in bad {
            let err = Manifest::parse(json).unwrap_err().to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    /// Values are checked and normalized per type.
    #[test]
    fn values_by_type() {
        let f = |ty: &str, optional: bool| FieldDef {
            name: "f".into(),
            ty: FieldType::parse(ty).unwrap(),
            optional,
            unique: false,
        };
        assert_eq!(check_value(&f("int", false), &json!(3.0)).unwrap(), json!(3));
        assert!(check_value(&f("int", false), &json!(3.5)).is_err());
        assert!(check_value(&f("int", false), &json!(1e300)).is_err());
        assert!(check_value(&f("int", false), &Value::Null).is_err());
        assert_eq!(check_value(&f("int", true), &Value::Null).unwrap(), Value::Null);
        assert!(check_value(&f("float", false), &json!(2)).is_ok());
        assert!(check_value(&f("bool", false), &json!("true")).is_err());
        assert!(check_value(&f("datetime", false), &json!("2026-11-25T10:00:00.5+01:00")).is_ok());
        assert!(check_value(&f("datetime", false), &json!("2026-11-25")).is_err());
        assert!(check_value(&f("id(A)", false), &json!("")).is_err());
        assert!(check_value(&f("string", false), &json!(1)).is_err());
    }
}
