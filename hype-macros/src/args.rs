//! Parsing of the attributes' own arguments: `#[hype::remote(name = "…")]`
//! and the (empty) argument list of `#[hype::main]`.
//!
//! Problems are reported to the [`Ctxt`] rather than returned, so a bad key
//! and a bad signature show up in the same compilation.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Token};

use crate::ctxt::Ctxt;

mod kw {
    syn::custom_keyword!(name);
}

/// The keys `#[hype::remote(…)]` accepts, as listed in error messages.
const REMOTE_KEYS: &str = "`name`";

/// The arguments of `#[hype::remote(…)]`.
#[derive(Debug, Default)]
pub struct RemoteArgs {
    /// `name = "…"`: the stable ID to use instead of `module_path!()::fn_name`.
    pub name: Option<LitStr>,
}

impl RemoteArgs {
    /// Parses the attribute's tokens, reporting every problem to `ctxt`.
    /// A syntax error stops parsing; the keys read before it are kept.
    pub fn parse(ctxt: &Ctxt, tokens: TokenStream) -> RemoteArgs {
        let mut args = RemoteArgs::default();
        let parser = |input: ParseStream<'_>| {
            while !input.is_empty() {
                if input.peek(kw::name) {
                    let key: kw::name = input.parse()?;
                    if let Some(value) = parse_string_value(ctxt, input, key.span, "name")? {
                        args.set_name(ctxt, key, value);
                    }
                } else {
                    let key = input.call(Ident::parse_any).map_err(|err| {
                        syn::Error::new(
                            err.span(),
                            format!(
                                "expected a #[hype::remote] argument such as `name = \"jobs::word_count\"`; expected one of: {REMOTE_KEYS}"
                            ),
                        )
                    })?;
                    ctxt.error_spanned_by(
                        &key,
                        format!(
                            "unknown #[hype::remote] argument `{}`; expected one of: {REMOTE_KEYS}",
                            key.unraw()
                        ),
                    );
                    skip_value(input)?;
                }
                if input.is_empty() {
                    break;
                }
                input.parse::<Token![,]>()?;
            }
            Ok(())
        };
        if let Err(err) = parser.parse2(tokens) {
            ctxt.syn_error(err);
        }
        args
    }

    fn set_name(&mut self, ctxt: &Ctxt, key: kw::name, value: LitStr) {
        if self.name.is_some() {
            ctxt.error_spanned_by(
                key,
                "duplicate #[hype::remote] argument `name`; give it once",
            );
        } else if value.value().trim().is_empty() {
            ctxt.error_spanned_by(
                &value,
                "#[hype::remote] `name` must not be empty; give a stable ID such as `name = \"jobs::word_count\"`, or remove it to use `module_path::fn_name`",
            );
        } else {
            self.name = Some(value);
        }
    }
}

/// Parses `= "string"` after `key`. A missing `=` or a value of another kind
/// is reported to `ctxt` (and the value skipped); only syntax errors fail.
fn parse_string_value(
    ctxt: &Ctxt,
    input: ParseStream<'_>,
    key: Span,
    key_name: &str,
) -> syn::Result<Option<LitStr>> {
    let expected = format!(
        "#[hype::remote] `{key_name}` expects a string literal, such as `{key_name} = \"jobs::word_count\"`"
    );
    if !input.peek(Token![=]) {
        ctxt.error_at(key, expected);
        skip_value(input)?;
        return Ok(None);
    }
    input.parse::<Token![=]>()?;
    match input.parse::<Expr>()? {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit),
            attrs,
        }) if attrs.is_empty() => Ok(Some(lit)),
        other => {
            ctxt.error_spanned_by(&other, expected);
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

/// Checks that `#[hype::main]` was given no arguments.
pub fn parse_main(ctxt: &Ctxt, tokens: TokenStream) {
    if !tokens.is_empty() {
        ctxt.error_spanned_by(
            &tokens,
            "#[hype::main] takes no arguments; write `#[hype::main]`",
        );
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn parse(tokens: TokenStream) -> (RemoteArgs, Vec<String>) {
        let ctxt = Ctxt::new();
        let args = RemoteArgs::parse(&ctxt, tokens);
        let errors = match ctxt.check() {
            Ok(()) => Vec::new(),
            Err(err) => err.into_iter().map(|e| e.to_string()).collect(),
        };
        (args, errors)
    }

    #[test]
    fn empty_and_name() {
        let (args, errors) = parse(quote!());
        assert!(args.name.is_none() && errors.is_empty());
        let (args, errors) = parse(quote!(name = "jobs::count",));
        assert_eq!(args.name.unwrap().value(), "jobs::count");
        assert!(errors.is_empty(), "{errors:?}");
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
            name = "b"
        ));
        assert_eq!(args.name.unwrap().value(), "a");
        assert_eq!(
            errors,
            [
                "unknown #[hype::remote] argument `nme`; expected one of: `name`",
                "#[hype::remote] `name` expects a string literal, such as `name = \"jobs::word_count\"`",
                "#[hype::remote] `name` expects a string literal, such as `name = \"jobs::word_count\"`",
                "unknown #[hype::remote] argument `type`; expected one of: `name`",
                "#[hype::remote] `name` must not be empty; give a stable ID such as `name = \"jobs::word_count\"`, or remove it to use `module_path::fn_name`",
                "duplicate #[hype::remote] argument `name`; give it once",
            ]
        );
    }

    #[test]
    fn syntax_errors_keep_earlier_problems() {
        let (_, errors) = parse(quote!(nme = "x", "oops"));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[1].starts_with("expected a #[hype::remote] argument"));
    }
}
