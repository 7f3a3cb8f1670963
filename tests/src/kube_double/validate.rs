//! What the apiserver rejects with 422 Invalid (and the few decoding checks
//! that give 400), with its messages: `Pod "x" is invalid:
//! spec.containers[0].image: Required value`.
//!
//! A subset of the apiserver's validation: the rules a pod runner can
//! break (names, labels, containers, volumes and mounts, restart policy,
//! deadlines, resource quantities, claims, secret keys, node selectors,
//! tolerations, service account and priority class names). Objects the double
//! accepts may still be refused by a real cluster for rules not listed here.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, Pod, PodSpec, ResourceRequirements, Secret, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

/// How a field is wrong (apimachinery's `field.ErrorType`).
#[derive(Debug, Clone, PartialEq)]
enum ErrorType {
    Required,
    Invalid(Value),
    Duplicate(Value),
    NotFound(Value),
    NotSupported(Value, &'static [&'static str]),
    TooLong,
}

/// One field error.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldError {
    field: String,
    ty: ErrorType,
    detail: String,
}

impl FieldError {
    fn new(field: impl Into<String>, ty: ErrorType, detail: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            ty,
            detail: detail.into(),
        }
    }

    fn required(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError::new(field, ErrorType::Required, detail)
    }

    fn invalid(field: impl Into<String>, value: Value, detail: impl Into<String>) -> FieldError {
        FieldError::new(field, ErrorType::Invalid(value), detail)
    }

    /// The message without the field: `Required value`, `Invalid value: "x": …`.
    fn body(&self) -> String {
        let (head, value) = match &self.ty {
            ErrorType::Required => ("Required value".to_owned(), None),
            ErrorType::Invalid(v) => ("Invalid value".to_owned(), Some(v)),
            ErrorType::Duplicate(v) => ("Duplicate value".to_owned(), Some(v)),
            ErrorType::NotFound(v) => ("Not found".to_owned(), Some(v)),
            ErrorType::NotSupported(v, supported) => {
                let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
                return format!(
                    "Unsupported value: {}: supported values: {}",
                    v,
                    list.join(", ")
                );
            }
            ErrorType::TooLong => ("Too long".to_owned(), None),
        };
        let mut out = head;
        if let Some(v) = value {
            out.push_str(": ");
            out.push_str(&v.to_string());
        }
        if !self.detail.is_empty() {
            out.push_str(": ");
            out.push_str(&self.detail);
        }
        out
    }

    fn reason(&self) -> &'static str {
        match self.ty {
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Invalid(_) => "FieldValueInvalid",
            ErrorType::Duplicate(_) => "FieldValueDuplicate",
            ErrorType::NotFound(_) => "FieldValueNotFound",
            ErrorType::NotSupported(..) => "FieldValueNotSupported",
            ErrorType::TooLong => "FieldValueTooLong",
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// The message and `details.causes` of a 422 for `errors` (not empty).
pub(crate) fn invalid_status(kind: &str, name: &str, errors: &[FieldError]) -> (String, Value) {
    let list = if errors.len() == 1 {
        errors[0].to_string()
    } else {
        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
        format!("[{}]", all.join(", "))
    };
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({"reason": e.reason(), "message": e.body(), "field": e.field}))
        .collect();
    (format!("{kind} {name:?} is invalid: {list}"), json!(causes))
}

const DNS1123_LABEL_ERROR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_ERROR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const QUALIFIED_NAME_ERROR: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_ERROR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const CONFIG_KEY_ERROR: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Why `s` is not a DNS-1123 label (at most 63 characters), if it is not.
pub(crate) fn dns1123_label_problem(s: &str) -> Option<String> {
    if s.len() > 63 {
        Some("must be no more than 63 characters".to_owned())
    } else if !is_dns1123_label(s) {
        Some(DNS1123_LABEL_ERROR.to_owned())
    } else {
        None
    }
}

/// Why `s` is not a DNS-1123 subdomain (at most 253 characters), if it is not.
pub(crate) fn dns1123_subdomain_problem(s: &str) -> Option<String> {
    if s.len() > 253 {
        Some("must be no more than 253 characters".to_owned())
    } else if s.split('.').any(|part| !is_dns1123_label(part)) {
        Some(DNS1123_SUBDOMAIN_ERROR.to_owned())
    } else {
        None
    }
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Why `key` is not a valid label key (`[prefix/]name`), if it is not.
pub(crate) fn label_key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Some("prefix part must be non-empty".to_owned());
        }
        if let Some(problem) = dns1123_subdomain_problem(prefix) {
            return Some(format!("prefix part {problem}"));
        }
    }
    if name.is_empty() {
        Some("name part must be non-empty".to_owned())
    } else if name.len() > 63 {
        Some("name part must be no more than 63 characters".to_owned())
    } else if !is_qualified_name_part(name) {
        Some(QUALIFIED_NAME_ERROR.to_owned())
    } else {
        None
    }
}

/// Why `value` is not a valid label value, if it is not.
pub(crate) fn label_value_problem(value: &str) -> Option<String> {
    if value.len() > 63 {
        Some("must be no more than 63 characters".to_owned())
    } else if !value.is_empty() && !is_qualified_name_part(value) {
        Some(LABEL_VALUE_ERROR.to_owned())
    } else {
        None
    }
}

/// Why `image` is not a valid image reference, if it is not (what the
/// kubelet reports as `InvalidImageName`).
pub(crate) fn image_name_problem(image: &str) -> Option<String> {
    let name = image.split_once('@').map_or(image, |(n, _)| n);
    let (name, tag) = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    };
    if let Some(tag) = tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
            && (tag.as_bytes()[0].is_ascii_alphanumeric() || tag.as_bytes()[0] == b'_');
        if !ok {
            return Some("invalid reference format".to_owned());
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1
        && (parts[0].contains(['.', ':'])
            || parts[0] == "localhost"
            || parts[0] != parts[0].to_lowercase())
    {
        let domain = parts.remove(0);
        if domain.is_empty()
            || !domain
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':'))
        {
            return Some("invalid reference format".to_owned());
        }
    }
    for part in parts {
        if part.bytes().any(|c| c.is_ascii_uppercase()) {
            return Some("invalid reference format: repository name must be lowercase".to_owned());
        }
        let b = part.as_bytes();
        let ok = !b.is_empty()
            && b.iter().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
            })
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric();
        if !ok {
            return Some("invalid reference format".to_owned());
        }
    }
    None
}

/// A quantity's value as the apiserver keeps it: a whole number of
/// billionths of the unit (nanocores, nanobytes). `ParseQuantity` rounds
/// anything finer up, away from zero, to `1n`, and caps binary-suffixed
/// amounts at 2^63 − 1 units; comparisons (`Quantity.Cmp`) are then exact,
/// as the derived ordering of the integer is here.
///
/// Deliberately not the runtime's parser (`hype-runtime`'s
/// `environment::quantity`), so a bug shared by both is unlikely: this one
/// tokenises with a state machine and works in fixed-point nano-units,
/// that one splits the text and keeps an exact decimal mantissa and
/// exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Amount(i128);

/// Nano-units in one unit.
const NANOS_PER_UNIT: i128 = 1_000_000_000;

impl Amount {
    /// Nothing (`0`).
    pub(crate) const ZERO: Amount = Amount(0);

    /// Whether the value is below zero.
    pub(crate) fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// The value in whole units rounded up, as `Quantity.Value()` gives it
    /// (`1.1Gi` → 1 181 116 007 bytes), saturating at the `i64` range.
    pub(crate) fn ceil(self) -> i64 {
        let whole = self.0 / NANOS_PER_UNIT;
        let up = i128::from(self.0 % NANOS_PER_UNIT > 0);
        saturate(whole + up)
    }

    /// The value times `factor`, rounded to the nearest whole number with
    /// halves away from zero, saturating at the `i64` range (`700m` × 1024
    /// → 717).
    pub(crate) fn times_rounded(self, factor: i64) -> i64 {
        let Some(product) = self.0.checked_mul(i128::from(factor)) else {
            return if (self.0 < 0) == (factor < 0) {
                i64::MAX
            } else {
                i64::MIN
            };
        };
        let whole = product / NANOS_PER_UNIT;
        let rest = product % NANOS_PER_UNIT; // same sign as `product`
        let away = i128::from(2 * rest.abs() >= NANOS_PER_UNIT);
        saturate(whole + away * product.signum())
    }
}

/// `v` clamped to the `i64` range.
fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// A quantity's value (`750m` → 0.75, `1Gi` → 2^30, in nano-units), if it
/// parses as the apiserver's `ParseQuantity` would: surrounding whitespace
/// trimmed (as `Quantity`'s JSON decoding does), then
/// `[+-]? digits [. digits] suffix` with at least one digit, where the
/// suffix is empty, `n u m k M G T P E`, `Ki Mi Gi Ti Pi Ei`, or `e`/`E`
/// and a signed whole number. Stricter than the apiserver in two corners:
/// `.`, `+` and `-` alone (which `ParseQuantity` reads as zero) are
/// refused, and so are decimal amounts whose nano-units do not fit in an
/// `i128` (beyond about 1.7 × 10^29 units) and numbers with more
/// significant digits than a `u128` holds (about 38, fewer with a binary
/// suffix and a fraction).
pub(crate) fn quantity(q: &str) -> Option<Amount> {
    /// Where the tokeniser is.
    #[derive(Clone, Copy, PartialEq)]
    enum At {
        /// Nothing read yet.
        Start,
        /// After the sign.
        Sign,
        /// In the digits before any `.`.
        Whole,
        /// In the digits after the `.` (or just after it).
        Fraction,
        /// In the suffix's letters (`Ki`, `m`, `e` of `e3`).
        Letters,
        /// After a sign that follows the letters (`e-`).
        ExponentSign,
        /// In the digits that end the suffix (`3` of `e-3`).
        ExponentDigits,
    }
    let mut at = At::Start;
    let mut negative = false;
    // Every digit of the number, the '.' left out, and how many follow it.
    let mut digits: Vec<u8> = Vec::new();
    let mut places: i64 = 0;
    let mut suffix = String::new();
    for c in q.trim().chars() {
        at = match (at, c) {
            (At::Start, '+' | '-') => {
                negative = c == '-';
                At::Sign
            }
            (At::Start | At::Sign | At::Whole, '0'..='9') => {
                digits.push(c as u8 - b'0');
                At::Whole
            }
            (At::Start | At::Sign | At::Whole, '.') => At::Fraction,
            (At::Fraction, '0'..='9') => {
                digits.push(c as u8 - b'0');
                places += 1;
                At::Fraction
            }
            (
                At::Whole | At::Fraction | At::Letters,
                'e' | 'E' | 'i' | 'n' | 'u' | 'm' | 'k' | 'K' | 'M' | 'G' | 'T' | 'P',
            ) => {
                suffix.push(c);
                At::Letters
            }
            (At::Letters, '+' | '-') => {
                suffix.push(c);
                At::ExponentSign
            }
            (At::Letters | At::ExponentSign | At::ExponentDigits, '0'..='9') => {
                suffix.push(c);
                At::ExponentDigits
            }
            _ => return None,
        };
    }
    if digits.is_empty() || matches!(at, At::Start | At::Sign | At::ExponentSign) {
        return None;
    }

    // value = digits × 2^twos × 10^tens, in nano-units.
    let (twos, suffix_tens): (u32, i64) = match suffix.as_str() {
        "" => (0, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        // `str::parse` takes a leading `+` or `-`, like Go's ParseInt.
        s if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => (0, s[1..].parse().ok()?),
        _ => return None,
    };
    let lead = digits.iter().take_while(|&&d| d == 0).count();
    let trail = digits[lead..].iter().rev().take_while(|&&d| d == 0).count();
    let significant = &digits[lead..digits.len() - trail];
    if significant.is_empty() {
        return Some(Amount::ZERO);
    }
    let tens = suffix_tens
        .checked_add(9)?
        .checked_sub(places)?
        .checked_add(i64::try_from(trail).ok()?)?;
    let exact = significant
        .iter()
        .try_fold(0u128, |n, &d| n.checked_mul(10)?.checked_add(u128::from(d)))
        .and_then(|n| n.checked_mul(1u128 << twos))
        .and_then(|n| {
            if tens >= 0 {
                n.checked_mul(10u128.checked_pow(u32::try_from(tens).ok()?)?)
            } else {
                // Finer than a nano-unit: round up, away from zero. A
                // divisor beyond u128 leaves less than one nano-unit.
                Some(
                    match u32::try_from(tens.unsigned_abs())
                        .ok()
                        .and_then(|k| 10u128.checked_pow(k))
                    {
                        Some(divisor) => n.div_ceil(divisor),
                        None => 1,
                    },
                )
            }
        });
    let cap = u128::from(i64::MAX.unsigned_abs()) * NANOS_PER_UNIT.unsigned_abs();
    let nanos = match exact {
        Some(n) if twos == 0 => n,
        Some(n) => n.min(cap),
        // A whole number of units beyond u128 nano-units: far over the cap.
        None if twos > 0 && tens >= 0 => cap,
        None => return None,
    };
    let nanos = i128::try_from(nanos).ok()?;
    Some(Amount(if negative { -nanos } else { nanos }))
}

/// Quantities that do not parse: the apiserver refuses those while decoding
/// (400), before validation.
pub(crate) fn bad_quantities(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        if let Some(r) = &c.resources {
            for map in [&r.requests, &r.limits].into_iter().flatten() {
                for q in map.values() {
                    if quantity(&q.0).is_none() {
                        return Some(format!(
                            "Pod in version \"v1\" cannot be handled as a Pod: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' (got {:?})",
                            q.0
                        ));
                    }
                }
            }
        }
    }
    None
}

fn validate_meta(meta: &ObjectMeta, generated: bool, errors: &mut Vec<FieldError>) {
    if generated {
        let prefix = meta.generate_name.as_deref().unwrap_or_default();
        let masked = prefix.strip_suffix('-').unwrap_or(prefix);
        if let Some(problem) = dns1123_subdomain_problem(masked) {
            errors.push(FieldError::invalid(
                "metadata.generateName",
                json!(prefix),
                problem,
            ));
        }
    } else {
        match meta.name.as_deref() {
            None | Some("") => errors.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            )),
            Some(name) => {
                if let Some(problem) = dns1123_subdomain_problem(name) {
                    errors.push(FieldError::invalid("metadata.name", json!(name), problem));
                }
            }
        }
    }
    for (key, value) in meta.labels.iter().flatten() {
        if let Some(problem) = label_key_problem(key) {
            errors.push(FieldError::invalid("metadata.labels", json!(key), problem));
        }
        if let Some(problem) = label_value_problem(value) {
            errors.push(FieldError::invalid(
                "metadata.labels",
                json!(value),
                problem,
            ));
        }
    }
    for key in meta.annotations.iter().flatten().map(|(k, _)| k) {
        if let Some(problem) = label_key_problem(key) {
            errors.push(FieldError::invalid(
                "metadata.annotations",
                json!(key),
                problem,
            ));
        }
    }
}

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const MESSAGE_POLICIES: &[&str] = &["FallbackToLogsOnError", "File"];
const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

fn volume_sources(v: &Volume) -> usize {
    let value = serde_json::to_value(v).expect("volumes serialise");
    value
        .as_object()
        .map(|m| m.keys().filter(|k| *k != "name").count())
        .unwrap_or(0)
}

/// Pod validation. `generated`: the name came from `generateName`.
pub(crate) fn pod(pod: &Pod, generated: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    validate_meta(&pod.metadata, generated, &mut errors);
    let Some(spec) = &pod.spec else {
        errors.push(FieldError::required("spec.containers", ""));
        return errors;
    };

    let mut volumes = BTreeSet::new();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let field = format!("spec.volumes[{i}]");
        if v.name.is_empty() {
            errors.push(FieldError::required(format!("{field}.name"), ""));
        } else if let Some(problem) = dns1123_label_problem(&v.name) {
            errors.push(FieldError::invalid(
                format!("{field}.name"),
                json!(v.name),
                problem,
            ));
        } else if !volumes.insert(v.name.as_str()) {
            errors.push(FieldError::new(
                format!("{field}.name"),
                ErrorType::Duplicate(json!(v.name)),
                "",
            ));
        }
        match volume_sources(v) {
            0 => errors.push(FieldError::required(
                field.clone(),
                "must specify a volume type",
            )),
            1 => {}
            _ => errors.push(FieldError::new(
                field.clone(),
                ErrorType::Invalid(json!("")),
                "may not specify more than 1 volume type",
            )),
        }
        if let Some(s) = &v.secret
            && s.secret_name.as_deref().unwrap_or_default().is_empty()
        {
            errors.push(FieldError::required(
                format!("{field}.secret.secretName"),
                "",
            ));
        }
        if let Some(c) = &v.persistent_volume_claim
            && c.claim_name.is_empty()
        {
            errors.push(FieldError::required(
                format!("{field}.persistentVolumeClaim.claimName"),
                "",
            ));
        }
    }

    if spec.containers.is_empty() {
        errors.push(FieldError::required("spec.containers", ""));
    }
    let mut names = BTreeSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        validate_container(
            c,
            &format!("spec.containers[{i}]"),
            &volumes,
            &mut names,
            &mut errors,
        );
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        validate_container(
            c,
            &format!("spec.initContainers[{i}]"),
            &volumes,
            &mut names,
            &mut errors,
        );
    }

    if let Some(policy) = spec.restart_policy.as_deref()
        && !RESTART_POLICIES.contains(&policy)
    {
        errors.push(FieldError::new(
            "spec.restartPolicy",
            ErrorType::NotSupported(json!(policy), RESTART_POLICIES),
            "",
        ));
    }
    if let Some(seconds) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&seconds)
    {
        errors.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            json!(seconds),
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    if let Some(seconds) = spec.termination_grace_period_seconds
        && seconds < 0
    {
        errors.push(FieldError::invalid(
            "spec.terminationGracePeriodSeconds",
            json!(seconds),
            "must be greater than or equal to 0",
        ));
    }
    validate_placement(spec, &mut errors);
    errors
}

const TOLERATION_OPERATORS: &[&str] = &["Equal", "Exists"];
const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// The node selector, tolerations, service account and priority class
/// names, as the apiserver's `ValidatePodSpec` checks them (labels as
/// `ValidateLabels`, tolerations as `validateTolerations`, the two names
/// as DNS subdomains).
fn validate_placement(spec: &PodSpec, errors: &mut Vec<FieldError>) {
    for (key, value) in spec.node_selector.iter().flatten() {
        if let Some(problem) = label_key_problem(key) {
            errors.push(FieldError::invalid(
                "spec.nodeSelector",
                json!(key),
                problem,
            ));
        }
        if let Some(problem) = label_value_problem(value) {
            errors.push(FieldError::invalid(
                "spec.nodeSelector",
                json!(value),
                problem,
            ));
        }
    }
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        let field = format!("spec.tolerations[{i}]");
        let key = t.key.as_deref().unwrap_or_default();
        let operator = t.operator.as_deref().unwrap_or_default();
        let value = t.value.as_deref().unwrap_or_default();
        if !key.is_empty() {
            if let Some(problem) = label_key_problem(key) {
                errors.push(FieldError::invalid(
                    format!("{field}.key"),
                    json!(key),
                    problem,
                ));
            }
        } else if operator != "Exists" {
            errors.push(FieldError::invalid(
                format!("{field}.operator"),
                json!(operator),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && t.effect.as_deref() != Some("NoExecute") {
            errors.push(FieldError::invalid(
                format!("{field}.effect"),
                json!(t.effect.as_deref().unwrap_or_default()),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match operator {
            "" | "Equal" => {
                if let Some(problem) = label_value_problem(value) {
                    errors.push(FieldError::invalid(
                        format!("{field}.operator"),
                        json!(value),
                        problem,
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errors.push(FieldError::invalid(
                        format!("{field}.operator"),
                        json!(value),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errors.push(FieldError::new(
                format!("{field}.operator"),
                ErrorType::NotSupported(json!(other), TOLERATION_OPERATORS),
                "",
            )),
        }
        if let Some(effect) = t.effect.as_deref()
            && !effect.is_empty()
            && !TAINT_EFFECTS.contains(&effect)
        {
            errors.push(FieldError::new(
                format!("{field}.effect"),
                ErrorType::NotSupported(json!(effect), TAINT_EFFECTS),
                "",
            ));
        }
    }
    for (field, name) in [
        ("spec.serviceAccountName", &spec.service_account_name),
        ("spec.priorityClassName", &spec.priority_class_name),
    ] {
        if let Some(name) = name.as_deref()
            && !name.is_empty()
            && let Some(problem) = dns1123_subdomain_problem(name)
        {
            errors.push(FieldError::invalid(field, json!(name), problem));
        }
    }
}

fn validate_container(
    c: &Container,
    field: &str,
    volumes: &BTreeSet<&str>,
    names: &mut BTreeSet<String>,
    errors: &mut Vec<FieldError>,
) {
    if c.name.is_empty() {
        errors.push(FieldError::required(format!("{field}.name"), ""));
    } else if let Some(problem) = dns1123_label_problem(&c.name) {
        errors.push(FieldError::invalid(
            format!("{field}.name"),
            json!(c.name),
            problem,
        ));
    } else if !names.insert(c.name.clone()) {
        errors.push(FieldError::new(
            format!("{field}.name"),
            ErrorType::Duplicate(json!(c.name)),
            "",
        ));
    }
    match c.image.as_deref() {
        None | Some("") => errors.push(FieldError::required(format!("{field}.image"), "")),
        Some(image) if image.trim() != image => errors.push(FieldError::invalid(
            format!("{field}.image"),
            json!(image),
            "must not have leading or trailing whitespace",
        )),
        Some(_) => {}
    }
    for (i, env) in c.env.iter().flatten().enumerate() {
        let f = format!("{field}.env[{i}]");
        if env.name.is_empty() {
            errors.push(FieldError::required(format!("{f}.name"), ""));
        } else if env.name.contains('=') || !env.name.bytes().all(|b| (32..127).contains(&b)) {
            errors.push(FieldError::invalid(
                format!("{f}.name"),
                json!(env.name),
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
        if let Some(from) = &env.value_from {
            if env.value.as_deref().is_some_and(|v| !v.is_empty()) {
                errors.push(FieldError::invalid(
                    format!("{f}.valueFrom"),
                    json!(""),
                    "may not be specified when `value` is not empty",
                ));
            }
            let sources = [
                from.secret_key_ref.is_some(),
                from.config_map_key_ref.is_some(),
                from.field_ref.is_some(),
                from.resource_field_ref.is_some(),
                from.file_key_ref.is_some(),
            ]
            .into_iter()
            .filter(|b| *b)
            .count();
            if sources != 1 {
                errors.push(FieldError::invalid(
                    format!("{f}.valueFrom"),
                    json!(""),
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                ));
            }
            if let Some(r) = &from.secret_key_ref {
                if r.name.is_empty() {
                    errors.push(FieldError::required(
                        format!("{f}.valueFrom.secretKeyRef.name"),
                        "",
                    ));
                }
                if r.key.is_empty() {
                    errors.push(FieldError::required(
                        format!("{f}.valueFrom.secretKeyRef.key"),
                        "",
                    ));
                }
            }
        }
    }
    let mut paths = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let f = format!("{field}.volumeMounts[{i}]");
        if m.name.is_empty() {
            errors.push(FieldError::required(format!("{f}.name"), ""));
        } else if !volumes.contains(m.name.as_str()) {
            errors.push(FieldError::new(
                format!("{f}.name"),
                ErrorType::NotFound(json!(m.name)),
                "",
            ));
        }
        if m.mount_path.is_empty() {
            errors.push(FieldError::required(format!("{f}.mountPath"), ""));
        } else if !paths.insert(m.mount_path.as_str()) {
            errors.push(FieldError::invalid(
                format!("{f}.mountPath"),
                json!(m.mount_path),
                "must be unique",
            ));
        }
        if let Some(sub) = m.sub_path.as_deref()
            && (sub.starts_with('/') || sub.split('/').any(|p| p == ".."))
        {
            errors.push(FieldError::invalid(
                format!("{f}.subPath"),
                json!(sub),
                "must be a relative path without '..'",
            ));
        }
    }
    if let Some(policy) = c.image_pull_policy.as_deref()
        && !PULL_POLICIES.contains(&policy)
    {
        errors.push(FieldError::new(
            format!("{field}.imagePullPolicy"),
            ErrorType::NotSupported(json!(policy), PULL_POLICIES),
            "",
        ));
    }
    if let Some(policy) = c.termination_message_policy.as_deref()
        && !MESSAGE_POLICIES.contains(&policy)
    {
        errors.push(FieldError::new(
            format!("{field}.terminationMessagePolicy"),
            ErrorType::NotSupported(json!(policy), MESSAGE_POLICIES),
            "",
        ));
    }
    if let Some(resources) = &c.resources {
        validate_resources(resources, &format!("{field}.resources"), errors);
    }
}

fn validate_resources(r: &ResourceRequirements, field: &str, errors: &mut Vec<FieldError>) {
    let empty = BTreeMap::new();
    let limits = r.limits.as_ref().unwrap_or(&empty);
    for (which, map) in [("requests", &r.requests), ("limits", &r.limits)] {
        for (name, q) in map.iter().flatten() {
            if quantity(&q.0).is_some_and(Amount::is_negative) {
                errors.push(FieldError::invalid(
                    format!("{field}.{which}[{name}]"),
                    json!(q.0),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    for (name, request) in r.requests.iter().flatten() {
        if let Some(limit) = limits.get(name)
            && let (Some(req), Some(lim)) = (quantity(&request.0), quantity(&limit.0))
            && req > lim
        {
            errors.push(FieldError::invalid(
                format!("{field}.requests"),
                json!(request.0),
                format!("must be less than or equal to {name} limit of {}", limit.0),
            ));
        }
    }
}

/// Claim validation.
/// A Lease: its metadata, and a positive `spec.leaseDurationSeconds`.
pub(crate) fn lease(
    lease: &k8s_openapi::api::coordination::v1::Lease,
    generated: bool,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    validate_meta(&lease.metadata, generated, &mut errors);
    if let Some(seconds) = lease.spec.as_ref().and_then(|s| s.lease_duration_seconds)
        && seconds <= 0
    {
        errors.push(FieldError::invalid(
            "spec.leaseDurationSeconds",
            json!(seconds),
            "must be greater than 0",
        ));
    }
    errors
}

pub(crate) fn pvc(claim: &PersistentVolumeClaim, generated: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    validate_meta(&claim.metadata, generated, &mut errors);
    let spec = claim.spec.clone().unwrap_or_default();
    let modes = spec.access_modes.unwrap_or_default();
    if modes.is_empty() {
        errors.push(FieldError::required(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    for mode in &modes {
        if !ACCESS_MODES.contains(&mode.as_str()) {
            errors.push(FieldError::new(
                "spec.accessModes",
                ErrorType::NotSupported(json!(mode), ACCESS_MODES),
                "",
            ));
        }
    }
    let storage: Option<Quantity> = spec
        .resources
        .and_then(|r| r.requests)
        .and_then(|r| r.get("storage").cloned());
    match storage {
        None => errors.push(FieldError::required("spec.resources[storage]", "")),
        Some(q) => match quantity(&q.0) {
            None => errors.push(FieldError::invalid(
                "spec.resources[storage]",
                json!(q.0),
                "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            )),
            Some(v) if v <= Amount::ZERO => errors.push(FieldError::invalid(
                "spec.resources[storage]",
                json!(q.0),
                "must be greater than zero",
            )),
            Some(_) => {}
        },
    }
    errors
}

/// Secret validation (after `stringData` is merged into `data`).
pub(crate) fn secret(secret: &Secret, generated: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    validate_meta(&secret.metadata, generated, &mut errors);
    let mut total = 0;
    for (key, value) in secret.data.iter().flatten() {
        total += value.0.len();
        let ok = !key.is_empty()
            && key.len() <= 253
            && key
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            && key != "."
            && key != ".."
            && !key.starts_with("..");
        if !ok {
            errors.push(FieldError::invalid(
                format!("data[{key}]"),
                json!(key),
                CONFIG_KEY_ERROR,
            ));
        }
    }
    if total > 1024 * 1024 {
        errors.push(FieldError::new(
            "data",
            ErrorType::TooLong,
            "must have at most 1048576 bytes",
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_json(v: Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn message(p: &Pod) -> String {
        let errors = pod(p, false);
        invalid_status("Pod", p.metadata.name.as_deref().unwrap_or(""), &errors).0
    }

    #[test]
    fn placement_is_checked_as_the_apiserver_does() {
        let p = pod_json(json!({"metadata": {"name": "x"}, "spec": {
            "nodeSelector": {"bad key!": "v", "pool": "no spaces"},
            "tolerations": [
                {"operator": "Equal", "value": "v"},
                {"key": "k", "operator": "Exists", "value": "v", "effect": "NoSchedule"},
                {"key": "k", "operator": "Like", "effect": "Sometimes"},
                {"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}],
            "serviceAccountName": "Not_OK", "priorityClassName": "UPPER",
            "containers": [{"name": "c", "image": "i"}]}}));
        let m = message(&p);
        for needle in [
            "spec.nodeSelector: Invalid value: \"bad key!\"",
            "spec.nodeSelector: Invalid value: \"no spaces\"",
            "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty",
            "spec.tolerations[1].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'",
            "spec.tolerations[2].operator: Unsupported value: \"Like\"",
            "spec.tolerations[2].effect: Unsupported value: \"Sometimes\"",
            "spec.tolerations[3].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
            "spec.serviceAccountName: Invalid value: \"Not_OK\"",
            "spec.priorityClassName: Invalid value: \"UPPER\"",
        ] {
            assert!(m.contains(needle), "{m} lacks {needle}");
        }
        let fine = pod_json(json!({"metadata": {"name": "x"}, "spec": {
            "nodeSelector": {"cloud.google.com/gke-spot": "true"},
            "tolerations": [
                {"operator": "Exists"},
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "k", "value": "v"},
                {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}],
            "serviceAccountName": "reader", "priorityClassName": "batch-low",
            "containers": [{"name": "c", "image": "i"}]}}));
        assert_eq!(pod(&fine, false), Vec::new());
    }

    #[test]
    fn pod_messages_look_like_the_apiserver() {
        let p =
            pod_json(json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c"}]}}));
        assert_eq!(
            message(&p),
            "Pod \"x\" is invalid: spec.containers[0].image: Required value"
        );
        let p = pod_json(json!({"metadata": {"name": "x"}, "spec": {"containers": []}}));
        assert_eq!(
            message(&p),
            "Pod \"x\" is invalid: spec.containers: Required value"
        );
        let p = pod_json(json!({"metadata": {"name": "x"}, "spec": {
            "restartPolicy": "Sometimes", "activeDeadlineSeconds": 0,
            "volumes": [{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}],
            "containers": [
                {"name": "c", "image": "i", "volumeMounts": [{"name": "b", "mountPath": "/b"}]},
                {"name": "c", "image": "i"}]}}));
        let m = message(&p);
        for needle in [
            "spec.volumes[1].name: Duplicate value: \"a\"",
            "spec.containers[0].volumeMounts[0].name: Not found: \"b\"",
            "spec.containers[1].name: Duplicate value: \"c\"",
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
        ] {
            assert!(m.contains(needle), "{m} lacks {needle}");
        }
        let p = pod_json(
            json!({"metadata": {"name": "Bad_Name", "labels": {"ok": "no spaces"}},
            "spec": {"containers": [{"name": "C", "image": "i"}]}}),
        );
        let m = message(&p);
        assert!(
            m.contains(
                "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
            ),
            "{m}"
        );
        assert!(
            m.contains("metadata.labels: Invalid value: \"no spaces\""),
            "{m}"
        );
        assert!(
            m.contains("spec.containers[0].name: Invalid value: \"C\""),
            "{m}"
        );
        assert!(pod(&pod_json(json!({"metadata": {"name": "ok"}, "spec": {"containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]}})), false)[0]
            .to_string()
            .contains("must be less than or equal to cpu limit of 1"));
    }

    #[test]
    fn names_labels_images_quantities() {
        assert!(dns1123_label_problem("hype-run").is_none());
        assert!(dns1123_label_problem("-x").is_some());
        assert!(dns1123_label_problem(&"a".repeat(64)).is_some());
        assert!(dns1123_subdomain_problem("a.b-c").is_none());
        assert!(dns1123_subdomain_problem("a..b").is_some());
        assert!(label_key_problem("app.kubernetes.io/managed-by").is_none());
        assert!(label_key_problem("/x").is_some());
        assert!(label_key_problem("Bad Key").is_some());
        assert!(label_value_problem("").is_none());
        assert!(label_value_problem("a.b_c-D").is_none());
        assert!(label_value_problem("-a").is_some());
        assert!(label_value_problem(&"a".repeat(64)).is_some());
        for ok in [
            "hype-test-worker:latest",
            "gcr.io/p/env-image",
            "localhost:5000/a/b:v1.2",
            "busybox@sha256:abc",
            "Registry.Example.com/x",
        ] {
            assert_eq!(image_name_problem(ok), None, "{ok}");
        }
        for bad in ["Hype:latest", "a b", "x:", "gcr.io/P/x", "x:-tag"] {
            assert!(image_name_problem(bad).is_some(), "{bad}");
        }
        let nanos = |q: &str| quantity(q).map(|a| a.0);
        const UNIT: i128 = NANOS_PER_UNIT;
        assert_eq!(nanos("750m"), Some(750_000_000)); // 0.75
        assert_eq!(nanos("1Gi"), Some(1073741824 * UNIT));
        assert_eq!(nanos("1e3"), Some(1000 * UNIT));
        assert_eq!(quantity("lots"), None);
        assert_eq!(quantity("1.2.3"), None);
    }

    #[test]
    fn quantities_as_the_apiserver_reads_them() {
        let nanos = |q: &str| quantity(q).map(|a| a.0);
        let same = |a: &str, b: &str| {
            let (x, y) = (quantity(a), quantity(b));
            assert!(x.is_some() && x == y, "{a} = {x:?}, {b} = {y:?}");
        };
        const UNIT: i128 = NANOS_PER_UNIT;
        same("0.5Gi", "512Mi");
        same("1.5Gi", "1536Mi");
        same("1E3", "1e3");
        same("1e3", "1k");
        same("1e+3", "1k");
        same("1E-2", "10m");
        same("1E", "1e18");
        same("+1", "1");
        same("1.", "1");
        same(".5", "500m");
        same("007", "7");
        same("1000m", "1");
        same("1Ki", "1.024k");
        same(" 2Gi\n", "2Gi");
        same("-0", "0");
        same("0Gi", "0");
        assert_eq!(nanos("-1"), Some(-UNIT));
        assert!(quantity("-1").unwrap().is_negative());
        assert!(!quantity("-0").unwrap().is_negative());
        assert_eq!(nanos("1n"), Some(1));
        assert_eq!(nanos("1Ei"), Some((1 << 60) * UNIT));
        assert_eq!(nanos("129e6"), Some(129_000_000 * UNIT));
        assert_eq!(nanos("123456789123456789"), Some(123456789123456789 * UNIT));
        // Finer than 1n rounds up, away from zero.
        assert_eq!(nanos("0.5n"), Some(1));
        assert_eq!(nanos("1.1n"), Some(2));
        assert_eq!(nanos("-0.5n"), Some(-1));
        assert_eq!(nanos("1e-400"), Some(1));
        // Binary amounts are capped at 2^63 - 1 units, decimal ones are not.
        same("16Ei", "9223372036854775807");
        same("8Ei", "9223372036854775807");
        same("99999999999999999999999Ei", "16Ei");
        assert!(quantity("1e19") > quantity("16Ei"));
        assert_eq!(nanos("-16Ei"), Some(-i128::from(i64::MAX) * UNIT));
        // Ordering is exact.
        assert!(quantity("1Gi") > quantity("1G"));
        assert!(quantity("1001m") > quantity("1"));
        assert!(quantity("999999999n") < quantity("1"));
        assert!(quantity("-2") < quantity("-1"));
        // Not quantities: trailing junk, inner spaces, bad suffixes.
        for bad in [
            "",
            " ",
            ".",
            "+",
            "-",
            "--1",
            "+-1",
            "Mi",
            "1Gb",
            "1Gix",
            "1 Gi",
            "1e3x",
            "1k+",
            "1.5.",
            "1..5",
            "1e",
            "1E+",
            "1e-",
            "1ee3",
            "1e3.5",
            "1K",
            "1ki",
            "0x10",
            "1_000",
            "1,5",
            "1e99999999999999999999",
            "1e40",
            "1e-99999999999999999999",
        ] {
            assert_eq!(quantity(bad), None, "{bad:?}");
        }
        // What the kubelet makes of them.
        assert_eq!(quantity("1.1Gi").unwrap().ceil(), 1_181_116_007);
        assert_eq!(quantity("512Mi").unwrap().ceil(), 512 << 20);
        assert_eq!(quantity("1m").unwrap().ceil(), 1);
        assert_eq!(quantity("-1.5").unwrap().ceil(), -1);
        assert_eq!(quantity("1e20").unwrap().ceil(), i64::MAX);
        assert_eq!(
            quantity("750m").unwrap().times_rounded(1_000_000_000),
            750_000_000
        );
        assert_eq!(quantity("700m").unwrap().times_rounded(1024), 717);
        assert_eq!(quantity("250m").unwrap().times_rounded(1024), 256);
        assert_eq!(quantity("1m").unwrap().times_rounded(1024), 1);
        assert_eq!(quantity("-700m").unwrap().times_rounded(1024), -717);
        assert_eq!(quantity("1e29").unwrap().times_rounded(1024), i64::MAX);
        assert_eq!(quantity("-1e29").unwrap().times_rounded(1024), i64::MIN);
    }
}
