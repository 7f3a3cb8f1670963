//! Parsing of the attributes' own arguments: `#[hype::remote(name = "…",
//! crate = "…", cpu = "2", memory = "4Gi", gpu = "nvidia-l4:1",
//! timeout = "10m", retries = 2, spot)]` and `#[hype::main(crate = "…", interrupts = false)]`.
//!
//! The keys are read with [`syn::meta::parser`], as serde_derive reads its
//! attributes. Problems are reported to the [`Ctxt`] rather than returned, so
//! a bad key and a bad signature show up in the same compilation: a value
//! of the wrong kind, an unknown key (its value skipped) or a duplicate is
//! reported and parsing goes on; only a syntax error stops it, keeping the
//! keys read before.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, ExprLit, Lit, LitBool, LitStr, Path, Token};

use crate::ctxt::Ctxt;
use crate::values;

/// What the messages say about one attribute.
struct Attr {
    /// `#[hype::remote]`.
    name: &'static str,
    /// The keys it accepts, as listed in error messages.
    keys: &'static str,
    /// An argument to show as an example.
    example: &'static str,
}

const REMOTE: Attr = Attr {
    name: "#[hype::remote]",
    keys: "`name`, `crate`, `cpu`, `memory`, `gpu`, `timeout`, `retries`, `spot`",
    example: "name = \"jobs::word_count\"",
};

const MAIN: Attr = Attr {
    name: "#[hype::main]",
    keys: "`crate`, `interrupts`",
    example: "interrupts = false",
};

/// The arguments of `#[hype::remote(…)]`.
#[derive(Debug, Default)]
pub struct RemoteArgs {
    /// `name = "…"`: the stable ID to use instead of `module_path!()::fn_name`.
    pub name: Option<LitStr>,
    /// `crate = "…"`: the path to the `hype` crate.
    pub krate: Option<Path>,
    /// The function's defaults, each value checked.
    pub defaults: Defaults,
}

/// The defaults `#[hype::remote(…)]` gives its function, checked.
#[derive(Debug, Default)]
pub struct Defaults {
    /// `cpu = "2"`: a quantity.
    pub cpu: Option<LitStr>,
    /// `memory = "4Gi"`: a quantity.
    pub memory: Option<LitStr>,
    /// `gpu = "nvidia-l4:1"`: the count and the model.
    pub gpu: Option<(u32, Option<String>)>,
    /// `timeout = "10m"`, in milliseconds.
    pub timeout_millis: Option<u64>,
    /// `retries = 2`.
    pub retries: Option<u32>,
    /// `spot` or `spot = true|false`.
    pub spot: Option<bool>,
}

/// The arguments of `#[hype::main(…)]`.
#[derive(Debug)]
pub struct MainArgs {
    /// `crate = "…"`: the path to the `hype` crate.
    pub krate: Option<Path>,
    /// `interrupts = false`: leave SIGINT and SIGTERM to the program.
    pub interrupts: bool,
}

impl Default for MainArgs {
    fn default() -> Self {
        MainArgs {
            krate: None,
            interrupts: true,
        }
    }
}

/// The path generated code names hype by: `crate = "…"`, else `::hype`.
pub fn crate_path(krate: Option<&Path>) -> Path {
    krate.cloned().unwrap_or_else(|| syn::parse_quote!(::hype))
}

impl RemoteArgs {
    /// Parses the attribute's tokens, reporting every problem to `ctxt`.
    pub fn parse(ctxt: &Ctxt, tokens: TokenStream) -> RemoteArgs {
        let mut name = Once::new(&REMOTE, "name");
        let mut krate = Once::new(&REMOTE, "crate");
        let mut cpu = Once::new(&REMOTE, "cpu");
        let mut memory = Once::new(&REMOTE, "memory");
        let mut gpu = Once::new(&REMOTE, "gpu");
        let mut timeout = Once::new(&REMOTE, "timeout");
        let mut retries = Once::new(&REMOTE, "retries");
        let mut spot = Once::new(&REMOTE, "spot");
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("name") {
                let expected = "#[hype::remote] `name` expects a string literal, such as `name = \"jobs::word_count\"`";
                if let Some(value) = string_value(ctxt, &meta, expected)? {
                    if name.value.is_some() {
                        name.duplicate(ctxt, &meta.path);
                    } else if value.value().trim().is_empty() {
                        ctxt.error_spanned_by(
                            &value,
                            "#[hype::remote] `name` must not be empty; give a stable ID such as `name = \"jobs::word_count\"`, or remove it to use `module_path::fn_name`",
                        );
                    } else {
                        name.set(ctxt, &meta.path, value);
                    }
                }
            } else if meta.path.is_ident("crate") {
                if let Some(path) = crate_value(ctxt, &REMOTE, &meta)? {
                    krate.set(ctxt, &meta.path, path);
                }
            } else if meta.path.is_ident("cpu") || meta.path.is_ident("memory") {
                let (key, once) = if meta.path.is_ident("cpu") {
                    ("cpu", &mut cpu)
                } else {
                    ("memory", &mut memory)
                };
                let example = if key == "cpu" { "\"2\"" } else { "\"4Gi\"" };
                let expected = format!(
                    "#[hype::remote] `{key}` expects a quantity as a string literal, such as `{key} = {example}`"
                );
                if let Some(lit) = string_value(ctxt, &meta, &expected)? {
                    match values::quantity(&lit.value()) {
                        Ok(()) => once.set(ctxt, &meta.path, lit),
                        Err(why) => ctxt.error_spanned_by(
                            &lit,
                            format!("#[hype::remote] `{key}` must be a Kubernetes quantity, such as `{key} = {example}`: {why}"),
                        ),
                    }
                }
            } else if meta.path.is_ident("gpu") {
                let expected = "#[hype::remote] `gpu` expects `MODEL:COUNT` or `COUNT` as a string literal, such as `gpu = \"nvidia-l4:1\"`";
                if let Some(lit) = string_value(ctxt, &meta, expected)? {
                    match values::gpu(&lit.value()) {
                        Ok(value) => gpu.set(ctxt, &meta.path, value),
                        Err(why) => ctxt.error_spanned_by(
                            &lit,
                            format!(
                                "#[hype::remote] `gpu` must be `MODEL:COUNT` or `COUNT`: {why}"
                            ),
                        ),
                    }
                }
            } else if meta.path.is_ident("timeout") {
                let expected = "#[hype::remote] `timeout` expects a duration as a string literal, such as `timeout = \"10m\"` (units `ms`, `s`, `m`, `h`)";
                if let Some(lit) = string_value(ctxt, &meta, expected)? {
                    match values::duration_millis(&lit.value()) {
                        Ok(millis) => timeout.set(ctxt, &meta.path, millis),
                        Err(why) => ctxt.error_spanned_by(
                            &lit,
                            format!("#[hype::remote] `timeout` must be a duration such as `timeout = \"10m\"`: {why}"),
                        ),
                    }
                }
            } else if meta.path.is_ident("retries") {
                let expected =
                    "#[hype::remote] `retries` expects a whole number, such as `retries = 2`";
                if let Some(lit) = lit_value(ctxt, &meta, expected)? {
                    match &lit {
                        Lit::Int(int) => match int.base10_parse::<u32>() {
                            Ok(n) => retries.set(ctxt, &meta.path, n),
                            Err(_) => ctxt.error_spanned_by(
                                &lit,
                                format!("#[hype::remote] `retries` must be a whole number from 0 to {}, such as `retries = 2`", u32::MAX),
                            ),
                        },
                        _ => ctxt.error_spanned_by(&lit, expected),
                    }
                }
            } else if meta.path.is_ident("spot") {
                let expected = "#[hype::remote] `spot` is written alone, or with `true` or `false`, such as `spot` or `spot = false`";
                if meta.input.is_empty() || meta.input.peek(Token![,]) {
                    spot.set(ctxt, &meta.path, true);
                } else if let Some(lit) = lit_value(ctxt, &meta, expected)? {
                    match lit {
                        Lit::Bool(LitBool { value, .. }) => spot.set(ctxt, &meta.path, value),
                        other => ctxt.error_spanned_by(other, expected),
                    }
                }
            } else {
                unknown(ctxt, &REMOTE, &meta)?;
            }
            Ok(())
        });
        run(ctxt, &REMOTE, parser, tokens);
        RemoteArgs {
            name: name.value,
            krate: krate.value,
            defaults: Defaults {
                cpu: cpu.value,
                memory: memory.value,
                gpu: gpu.value,
                timeout_millis: timeout.value,
                retries: retries.value,
                spot: spot.value,
            },
        }
    }
}

impl MainArgs {
    /// Parses the attribute's tokens, reporting every problem to `ctxt`.
    pub fn parse(ctxt: &Ctxt, tokens: TokenStream) -> MainArgs {
        let mut krate = Once::new(&MAIN, "crate");
        let mut interrupts = Once::new(&MAIN, "interrupts");
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("crate") {
                if let Some(path) = crate_value(ctxt, &MAIN, &meta)? {
                    krate.set(ctxt, &meta.path, path);
                }
            } else if meta.path.is_ident("interrupts") {
                let expected = "#[hype::main] `interrupts` expects `true` or `false`, such as `interrupts = false`";
                if let Some(lit) = lit_value(ctxt, &meta, expected)? {
                    match lit {
                        Lit::Bool(LitBool { value, .. }) => {
                            interrupts.set(ctxt, &meta.path, value);
                        }
                        other => ctxt.error_spanned_by(other, expected),
                    }
                }
            } else {
                unknown(ctxt, &MAIN, &meta)?;
            }
            Ok(())
        });
        run(ctxt, &MAIN, parser, tokens);
        MainArgs {
            krate: krate.value,
            interrupts: interrupts.value.unwrap_or(true),
        }
    }
}

/// Runs `parser` over `tokens`. A syntax error (a key that is not a name, a
/// missing comma, a value that is no expression) is reported with syn's
/// words and what the attribute takes.
fn run(ctxt: &Ctxt, attr: &Attr, parser: impl Parser<Output = ()>, tokens: TokenStream) {
    if let Err(err) = parser.parse2(tokens) {
        for err in err {
            ctxt.error_at(
                err.span(),
                format!(
                    "{err}: {} takes comma-separated arguments such as `{}`; expected one of: {}",
                    attr.name, attr.example, attr.keys
                ),
            );
        }
    }
}

/// A key that may be given once.
struct Once<'a, T> {
    attr: &'a Attr,
    key: &'static str,
    value: Option<T>,
}

impl<'a, T> Once<'a, T> {
    fn new(attr: &'a Attr, key: &'static str) -> Self {
        Once {
            attr,
            key,
            value: None,
        }
    }

    /// Sets `value`, or reports a second `key` (the first value stays).
    fn set(&mut self, ctxt: &Ctxt, path: &Path, value: T) {
        if self.value.is_some() {
            self.duplicate(ctxt, path);
        } else {
            self.value = Some(value);
        }
    }

    /// Reports `key` given again, at `path`.
    fn duplicate(&self, ctxt: &Ctxt, path: &Path) {
        ctxt.error_spanned_by(
            path,
            format!(
                "duplicate {} argument `{}`; give it once",
                self.attr.name, self.key
            ),
        );
    }
}

/// Reports an unknown key and skips its value.
fn unknown(ctxt: &Ctxt, attr: &Attr, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    let key = path_text(&meta.path);
    // tokio's options: hype's runtime for `async fn main` has none.
    let tokio = if attr.name == MAIN.name
        && [
            "flavor",
            "worker_threads",
            "start_paused",
            "unhandled_panic",
        ]
        .contains(&key.as_str())
    {
        " (the multi-threaded tokio runtime hype starts takes no options)"
    } else {
        ""
    };
    ctxt.error_spanned_by(
        &meta.path,
        format!(
            "unknown {} argument `{key}`; expected one of: {}{tokio}",
            attr.name, attr.keys
        ),
    );
    skip_value(meta.input)
}

/// A key as written, without `r#`.
fn path_text(path: &Path) -> String {
    let segments: Vec<String> = path
        .segments
        .iter()
        .map(|segment| segment.ident.unraw().to_string())
        .collect();
    let leading = if path.leading_colon.is_some() {
        "::"
    } else {
        ""
    };
    format!("{leading}{}", segments.join("::"))
}

/// The literal after `key =`. A missing `=` (`key`, `key(…)`) or a value
/// that is not a literal is reported with `expected` (and the value
/// skipped); only syntax errors fail. Invisible groups (a `macro_rules!`
/// fragment) are looked through, as serde_derive does.
fn lit_value(ctxt: &Ctxt, meta: &ParseNestedMeta<'_>, expected: &str) -> syn::Result<Option<Lit>> {
    if !meta.input.peek(Token![=]) {
        ctxt.error_spanned_by(&meta.path, expected);
        skip_value(meta.input)?;
        return Ok(None);
    }
    let mut value: Expr = meta.value()?.parse()?;
    while let Expr::Group(group) = value {
        value = *group.expr;
    }
    match value {
        Expr::Lit(ExprLit { lit, attrs }) if attrs.is_empty() => Ok(Some(lit)),
        other => {
            ctxt.error_spanned_by(&other, expected);
            Ok(None)
        }
    }
}

/// The string literal after `key =`, reported with `expected` otherwise.
fn string_value(
    ctxt: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    expected: &str,
) -> syn::Result<Option<LitStr>> {
    Ok(match lit_value(ctxt, meta, expected)? {
        Some(Lit::Str(lit)) => Some(lit),
        Some(other) => {
            ctxt.error_spanned_by(other, expected);
            None
        }
        None => None,
    })
}

/// The path in `crate = "…"`, its tokens spanned on the string so that a
/// path that does not resolve is reported there.
fn crate_value(ctxt: &Ctxt, attr: &Attr, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<Path>> {
    let expected = format!(
        "{} `crate` expects the path to hype as a string literal, such as `crate = \"my_crate::hype\"`",
        attr.name
    );
    let Some(lit) = string_value(ctxt, meta, &expected)? else {
        return Ok(None);
    };
    match lit.parse_with(Path::parse_mod_style) {
        Ok(path) => Ok(Some(path)),
        Err(_) => {
            ctxt.error_spanned_by(
                &lit,
                format!(
                    "{} `crate` must be a path to the hype crate, such as `crate = \"my_crate::hype\"`; `{}` is not a path",
                    attr.name,
                    lit.value()
                ),
            );
            Ok(None)
        }
    }
}

/// Skips what follows a key up to the next top-level comma: `= expr`, or a
/// parenthesised list such as `key(…)`.
fn skip_value(input: ParseStream<'_>) -> syn::Result<()> {
    input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            if let proc_macro2::TokenTree::Punct(punct) = &tt
                && punct.as_char() == ','
            {
                break;
            }
            rest = next;
        }
        Ok(((), rest))
    })
}

#[cfg(test)]
mod tests {
    use quote::{ToTokens, quote};

    use super::*;

    fn errors(ctxt: Ctxt) -> Vec<String> {
        match ctxt.check() {
            Ok(()) => Vec::new(),
            Err(err) => err.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    fn parse(tokens: TokenStream) -> (RemoteArgs, Vec<String>) {
        let ctxt = Ctxt::new();
        let args = RemoteArgs::parse(&ctxt, tokens);
        (args, errors(ctxt))
    }

    fn parse_main(tokens: TokenStream) -> (MainArgs, Vec<String>) {
        let ctxt = Ctxt::new();
        let args = MainArgs::parse(&ctxt, tokens);
        (args, errors(ctxt))
    }

    fn path(path: Option<&Path>) -> String {
        path.map(|path| path.to_token_stream().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn empty_and_name() {
        let (args, errors) = parse(quote!());
        assert!(args.name.is_none() && args.krate.is_none() && errors.is_empty());
        let (args, errors) = parse(quote!(name = "jobs::count",));
        assert_eq!(args.name.unwrap().value(), "jobs::count");
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn crate_paths() {
        let (args, errors) = parse(quote!(crate = "my_crate::hype", name = "a"));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(path(args.krate.as_ref()), "my_crate :: hype");
        assert_eq!(args.name.unwrap().value(), "a");
        for given in [
            "::hype",
            "crate::reexport::hype",
            "self::h",
            "super::r#type",
        ] {
            let (args, errors) = parse_main(quote!(crate = #given));
            assert!(errors.is_empty(), "{given}: {errors:?}");
            let want: Path = syn::parse_str(given).unwrap();
            assert_eq!(args.krate, Some(want));
        }
        assert_eq!(
            path(Some(&crate_path(None))),
            quote!(::hype).to_string(),
            "the default"
        );
    }

    #[test]
    fn main_arguments() {
        let (args, errors) = parse_main(quote!());
        assert!(args.interrupts && args.krate.is_none() && errors.is_empty());
        let (args, errors) = parse_main(quote!(interrupts = false, crate = "h"));
        assert!(errors.is_empty(), "{errors:?}");
        assert!(!args.interrupts);
        assert_eq!(path(args.krate.as_ref()), "h");
        let (args, errors) = parse_main(quote!(interrupts = true));
        assert!(args.interrupts && errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn every_problem_is_reported() {
        let (args, errors) = parse(quote!(
            nme = "x",
            name = 5,
            name,
            r#type(1),
            name = "",
            name = "a",
            name = "b",
            crate = 5,
            crate = "not a path!",
            crate = "",
            crate = "a::<T>",
            crate = "a",
            crate = "b",
            a::b = 1
        ));
        assert_eq!(args.name.unwrap().value(), "a");
        assert_eq!(path(args.krate.as_ref()), "a");
        assert_eq!(
            errors,
            [
                "unknown #[hype::remote] argument `nme`; expected one of: `name`, `crate`, `cpu`, `memory`, `gpu`, `timeout`, `retries`, `spot`",
                "#[hype::remote] `name` expects a string literal, such as `name = \"jobs::word_count\"`",
                "#[hype::remote] `name` expects a string literal, such as `name = \"jobs::word_count\"`",
                "unknown #[hype::remote] argument `type`; expected one of: `name`, `crate`, `cpu`, `memory`, `gpu`, `timeout`, `retries`, `spot`",
                "#[hype::remote] `name` must not be empty; give a stable ID such as `name = \"jobs::word_count\"`, or remove it to use `module_path::fn_name`",
                "duplicate #[hype::remote] argument `name`; give it once",
                "#[hype::remote] `crate` expects the path to hype as a string literal, such as `crate = \"my_crate::hype\"`",
                "#[hype::remote] `crate` must be a path to the hype crate, such as `crate = \"my_crate::hype\"`; `not a path!` is not a path",
                "#[hype::remote] `crate` must be a path to the hype crate, such as `crate = \"my_crate::hype\"`; `` is not a path",
                "#[hype::remote] `crate` must be a path to the hype crate, such as `crate = \"my_crate::hype\"`; `a::<T>` is not a path",
                "duplicate #[hype::remote] argument `crate`; give it once",
                "unknown #[hype::remote] argument `a::b`; expected one of: `name`, `crate`, `cpu`, `memory`, `gpu`, `timeout`, `retries`, `spot`",
            ]
        );
    }

    #[test]
    fn every_main_problem_is_reported() {
        let (args, errors) = parse_main(quote!(
            interrupts = "no",
            interrupts,
            interrupts = false,
            interrupts = true,
            crate = hype,
            flavor = "current_thread",
            name = "x"
        ));
        assert!(!args.interrupts, "the first valid value stays");
        assert!(args.krate.is_none());
        let interrupts =
            "#[hype::main] `interrupts` expects `true` or `false`, such as `interrupts = false`";
        assert_eq!(
            errors,
            [
                interrupts,
                interrupts,
                "duplicate #[hype::main] argument `interrupts`; give it once",
                "#[hype::main] `crate` expects the path to hype as a string literal, such as `crate = \"my_crate::hype\"`",
                "unknown #[hype::main] argument `flavor`; expected one of: `crate`, `interrupts` (the multi-threaded tokio runtime hype starts takes no options)",
                "unknown #[hype::main] argument `name`; expected one of: `crate`, `interrupts`",
            ]
        );
    }

    #[test]
    fn defaults_are_read_and_checked() {
        let (args, errors) = parse(quote!(
            cpu = "2",
            memory = "4Gi",
            gpu = "nvidia-l4:1",
            timeout = "10m",
            retries = 2,
            spot
        ));
        assert!(errors.is_empty(), "{errors:?}");
        let d = args.defaults;
        assert_eq!(d.cpu.unwrap().value(), "2");
        assert_eq!(d.memory.unwrap().value(), "4Gi");
        assert_eq!(d.gpu, Some((1, Some("nvidia-l4".to_owned()))));
        assert_eq!(d.timeout_millis, Some(600_000));
        assert_eq!(d.retries, Some(2));
        assert_eq!(d.spot, Some(true));
        let (args, errors) = parse(quote!(spot = false, gpu = "2"));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(args.defaults.spot, Some(false));
        assert_eq!(args.defaults.gpu, Some((2, None)));

        let (args, errors) = parse(quote!(
            cpu = "lots",
            memory = 4,
            gpu = "nvidia-l4",
            gpu = "17",
            timeout = "10min",
            timeout = 10,
            retries = "2",
            retries = -1,
            spot = "yes",
            spot = 1,
            cpu = "1",
            cpu = "2"
        ));
        assert_eq!(args.defaults.cpu.unwrap().value(), "1");
        assert_eq!(
            errors,
            [
                "#[hype::remote] `cpu` must be a Kubernetes quantity, such as `cpu = \"2\"`: \"lots\" is not a quantity (expected e.g. 500m, 2, 512Mi, 1G)",
                "#[hype::remote] `memory` expects a quantity as a string literal, such as `memory = \"4Gi\"`",
                "#[hype::remote] `gpu` must be `MODEL:COUNT` or `COUNT`: \"nvidia-l4\" is not `MODEL:COUNT` or `COUNT`, such as \"nvidia-l4:1\" or \"2\"",
                "#[hype::remote] `gpu` must be `MODEL:COUNT` or `COUNT`: \"17\" asks for 17 GPUs; the count must be from 1 to 16",
                "#[hype::remote] `timeout` must be a duration such as `timeout = \"10m\"`: \"10min\" is not a duration: write a whole number and a unit, `ms`, `s`, `m` or `h`, such as \"10m\"",
                "#[hype::remote] `timeout` expects a duration as a string literal, such as `timeout = \"10m\"` (units `ms`, `s`, `m`, `h`)",
                "#[hype::remote] `retries` expects a whole number, such as `retries = 2`",
                "#[hype::remote] `retries` expects a whole number, such as `retries = 2`",
                "#[hype::remote] `spot` is written alone, or with `true` or `false`, such as `spot` or `spot = false`",
                "#[hype::remote] `spot` is written alone, or with `true` or `false`, such as `spot` or `spot = false`",
                "duplicate #[hype::remote] argument `cpu`; give it once",
            ]
        );
    }

    #[test]
    fn syntax_errors_keep_earlier_problems() {
        let (_, errors) = parse(quote!(nme = "x", "oops"));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(
            errors[1],
            "unexpected literal in nested attribute, expected ident: #[hype::remote] takes comma-separated arguments such as `name = \"jobs::word_count\"`; expected one of: `name`, `crate`, `cpu`, `memory`, `gpu`, `timeout`, `retries`, `spot`"
        );
        let (args, errors) = parse_main(quote!(interrupts = false crate = "h"));
        assert!(!args.interrupts);
        assert_eq!(
            errors,
            [
                "expected `,`: #[hype::main] takes comma-separated arguments such as `interrupts = false`; expected one of: `crate`, `interrupts`"
            ]
        );
    }
}
