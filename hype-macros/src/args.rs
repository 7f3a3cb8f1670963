//! Parsing of the attributes' own arguments: `#[hype::remote(name = "…",
//! crate = "…")]` and `#[hype::main(crate = "…", interrupts = false)]`.
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
    keys: "`name`, `crate`",
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
            } else {
                unknown(ctxt, &REMOTE, &meta)?;
            }
            Ok(())
        });
        run(ctxt, &REMOTE, parser, tokens);
        RemoteArgs {
            name: name.value,
            krate: krate.value,
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
                "unknown #[hype::remote] argument `nme`; expected one of: `name`, `crate`",
                "#[hype::remote] `name` expects a string literal, such as `name = \"jobs::word_count\"`",
                "#[hype::remote] `name` expects a string literal, such as `name = \"jobs::word_count\"`",
                "unknown #[hype::remote] argument `type`; expected one of: `name`, `crate`",
                "#[hype::remote] `name` must not be empty; give a stable ID such as `name = \"jobs::word_count\"`, or remove it to use `module_path::fn_name`",
                "duplicate #[hype::remote] argument `name`; give it once",
                "#[hype::remote] `crate` expects the path to hype as a string literal, such as `crate = \"my_crate::hype\"`",
                "#[hype::remote] `crate` must be a path to the hype crate, such as `crate = \"my_crate::hype\"`; `not a path!` is not a path",
                "#[hype::remote] `crate` must be a path to the hype crate, such as `crate = \"my_crate::hype\"`; `` is not a path",
                "#[hype::remote] `crate` must be a path to the hype crate, such as `crate = \"my_crate::hype\"`; `a::<T>` is not a path",
                "duplicate #[hype::remote] argument `crate`; give it once",
                "unknown #[hype::remote] argument `a::b`; expected one of: `name`, `crate`",
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
    fn syntax_errors_keep_earlier_problems() {
        let (_, errors) = parse(quote!(nme = "x", "oops"));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(
            errors[1],
            "unexpected literal in nested attribute, expected ident: #[hype::remote] takes comma-separated arguments such as `name = \"jobs::word_count\"`; expected one of: `name`, `crate`"
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
