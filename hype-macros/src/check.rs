//! The checks of a `#[hype::remote]` or `#[hype::main]` signature and of
//! the types it sends and returns, and the owned types their messages
//! suggest in place of a borrow or an `impl Trait`.
//!
//! Each check reports what it finds to the [`Ctxt`] and carries on.

use quote::quote;
use syn::{GenericArgument, PathArguments, ReturnType, Signature, Type, TypeParamBound};

use crate::ctxt::Ctxt;
use crate::tokens::tokens_text;

/// `const`, `unsafe` and `extern` have no meaning for a function called
/// through hype; each is reported on its own token.
pub fn check_qualifiers(ctxt: &Ctxt, sig: &Signature) {
    if let Some(constness) = &sig.constness {
        ctxt.error_spanned_by(
            constness,
            "#[hype::remote] functions cannot be `const fn`: the body runs at run time in another process; remove `const`",
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        ctxt.error_spanned_by(
            unsafety,
            "#[hype::remote] functions cannot be `unsafe fn`: no caller on the remote side can uphold a safety contract; make the function safe and put an `unsafe` block inside",
        );
    }
    if let Some(abi) = &sig.abi {
        ctxt.error_spanned_by(
            abi,
            format!(
                "#[hype::remote] functions cannot be `{} fn`: hype calls them with the Rust ABI; remove `{}`",
                tokens_text(abi),
                tokens_text(abi)
            ),
        );
    }
}

/// Generic, lifetime and const parameters are reported together, on the
/// `<…>` list.
pub fn check_no_generics(ctxt: &Ctxt, attr: &str, sig: &Signature) {
    let generics = &sig.generics;
    if generics.params.is_empty() {
        return;
    }
    let text = tokens_text(generics);
    let lifetimes_only = generics
        .params
        .iter()
        .all(|param| matches!(param, syn::GenericParam::Lifetime(_)));
    let msg = if attr == "#[hype::main]" {
        format!("{attr} functions cannot be generic; remove `{text}`")
    } else if lifetimes_only {
        format!(
            "{attr} functions cannot have lifetime parameters: `{text}` lets arguments borrow, but they travel to another process; remove it and use owned types"
        )
    } else {
        format!(
            "{attr} functions cannot be generic: `{text}` has no single type to send or receive; remove the parameters and use concrete owned types"
        )
    };
    ctxt.error_spanned_by(generics, msg);
}

/// Reported apart from [`check_no_generics`] so errors come in source order.
pub fn check_no_where_clause(ctxt: &Ctxt, attr: &str, sig: &Signature) {
    if let Some(where_clause) = &sig.generics.where_clause {
        ctxt.error_spanned_by(
            where_clause,
            format!("{attr} functions cannot have a `where` clause; remove it"),
        );
    }
}

/// Where a checked type appears, as named in the messages.
#[derive(Clone, Copy)]
pub enum Position {
    /// The type of an argument.
    Argument,
    /// The return type.
    Return,
}

impl Position {
    fn plural(self) -> &'static str {
        match self {
            Position::Argument => "arguments",
            Position::Return => "return types",
        }
    }
}

/// Reports every borrow (`&`, lifetime) and `impl Trait` in `ty`, each on the
/// smallest type that contains it.
pub fn check_type(ctxt: &Ctxt, ty: &Type, position: Position) {
    match ty {
        Type::Reference(_) => report_borrowed(ctxt, ty, position),
        Type::ImplTrait(_) => {
            let tail = match owned(ty) {
                Some(owned) => format!(
                    "use a concrete owned type such as `{}`",
                    tokens_text(&owned)
                ),
                None => "use a concrete owned type".to_owned(),
            };
            let what = match position {
                Position::Argument => "has no single type to send",
                Position::Return => "has no single type to send back",
            };
            ctxt.error_spanned_by(
                ty,
                format!(
                    "#[hype::remote] {} cannot be `impl Trait`: `{}` {what}; {tail}",
                    position.plural(),
                    tokens_text(ty)
                ),
            );
        }
        Type::Path(path) => {
            if let Some(qself) = &path.qself {
                check_type(ctxt, &qself.ty, position);
            }
            let has_lifetime = path.path.segments.iter().any(|segment| {
                matches!(&segment.arguments, PathArguments::AngleBracketed(args)
                    if args.args.iter().any(|arg| matches!(arg, GenericArgument::Lifetime(_))))
            });
            if has_lifetime {
                report_borrowed(ctxt, ty, position);
                return;
            }
            for segment in &path.path.segments {
                check_path_arguments(ctxt, &segment.arguments, position);
            }
        }
        Type::TraitObject(object) => {
            if object
                .bounds
                .iter()
                .any(|bound| matches!(bound, TypeParamBound::Lifetime(_)))
            {
                report_borrowed(ctxt, ty, position);
                return;
            }
            for bound in &object.bounds {
                if let TypeParamBound::Trait(bound) = bound {
                    for segment in &bound.path.segments {
                        check_path_arguments(ctxt, &segment.arguments, position);
                    }
                }
            }
        }
        Type::Array(array) => check_type(ctxt, &array.elem, position),
        Type::Slice(slice) => check_type(ctxt, &slice.elem, position),
        Type::Paren(paren) => check_type(ctxt, &paren.elem, position),
        Type::Group(group) => check_type(ctxt, &group.elem, position),
        Type::Tuple(tuple) => {
            for elem in &tuple.elems {
                check_type(ctxt, elem, position);
            }
        }
        // Pointers, fn pointers, `!` and macros are left to the type checker:
        // the generated `assert_wire` rejects them with its own message.
        _ => {}
    }
}

fn check_path_arguments(ctxt: &Ctxt, arguments: &PathArguments, position: Position) {
    match arguments {
        PathArguments::None => {}
        PathArguments::AngleBracketed(args) => {
            for arg in &args.args {
                match arg {
                    GenericArgument::Type(ty) => check_type(ctxt, ty, position),
                    GenericArgument::AssocType(assoc) => check_type(ctxt, &assoc.ty, position),
                    _ => {}
                }
            }
        }
        PathArguments::Parenthesized(args) => {
            for input in &args.inputs {
                check_type(ctxt, input, position);
            }
            if let ReturnType::Type(_, output) = &args.output {
                check_type(ctxt, output, position);
            }
        }
    }
}

fn report_borrowed(ctxt: &Ctxt, ty: &Type, position: Position) {
    let tail = match owned(ty) {
        Some(owned) => format!("use an owned type such as `{}`", tokens_text(&owned)),
        None => "use an owned type without lifetime parameters".to_owned(),
    };
    ctxt.error_spanned_by(
        ty,
        format!(
            "#[hype::remote] {} must be owned: `{}` borrows; {tail}",
            position.plural(),
            tokens_text(ty)
        ),
    );
}

/// Whether `ty` is `()`, possibly parenthesised.
pub fn is_unit(ty: &Type) -> bool {
    match ty {
        Type::Tuple(tuple) => tuple.elems.is_empty(),
        Type::Paren(paren) => is_unit(&paren.elem),
        Type::Group(group) => is_unit(&group.elem),
        _ => false,
    }
}

/// An owned type to suggest instead of `ty`: borrows replaced by what owns
/// the data (`&str` → `String`, `&[T]` → `Vec<T>`, `Cow<'a, T>` → owned `T`),
/// `impl Trait` by a type that would do for common traits. `None` when there
/// is no good guess (a user type with lifetime parameters, `impl Fn`).
fn owned(ty: &Type) -> Option<Type> {
    match ty {
        Type::Reference(reference) => owned_referent(&reference.elem),
        Type::ImplTrait(imp) => {
            let TypeParamBound::Trait(bound) = imp.bounds.first()? else {
                return None;
            };
            let last = bound.path.segments.last()?;
            let (generic, assoc) = single_generic(&last.arguments);
            match last.ident.to_string().as_str() {
                "Into" | "AsRef" | "Borrow" => owned_referent(generic?),
                "Iterator" | "IntoIterator" | "ExactSizeIterator" | "DoubleEndedIterator" => {
                    let item = owned(assoc?)?;
                    Some(syn::parse_quote!(Vec<#item>))
                }
                "Future" => owned(assoc?),
                "ToString" | "Display" => Some(syn::parse_quote!(String)),
                _ => None,
            }
        }
        Type::Path(path) => {
            let mut path = path.clone();
            if let Some(qself) = &mut path.qself {
                *qself.ty = owned(&qself.ty)?;
            }
            if let Some(last) = path.path.segments.last()
                && last.ident == "Cow"
                && let PathArguments::AngleBracketed(args) = &last.arguments
                && let Some(GenericArgument::Type(inner)) = args.args.last()
            {
                return owned_referent(inner);
            }
            for segment in &mut path.path.segments {
                if let PathArguments::AngleBracketed(args) = &mut segment.arguments {
                    if args
                        .args
                        .iter()
                        .any(|arg| matches!(arg, GenericArgument::Lifetime(_)))
                    {
                        return None;
                    }
                    for arg in &mut args.args {
                        match arg {
                            GenericArgument::Type(ty) => *ty = owned(ty)?,
                            GenericArgument::AssocType(assoc) => assoc.ty = owned(&assoc.ty)?,
                            _ => {}
                        }
                    }
                }
            }
            Some(Type::Path(path))
        }
        Type::Array(array) => {
            let mut array = array.clone();
            *array.elem = owned(&array.elem)?;
            Some(Type::Array(array))
        }
        Type::Slice(slice) => {
            let elem = owned(&slice.elem)?;
            Some(syn::parse_quote!(Vec<#elem>))
        }
        Type::Tuple(tuple) => {
            let mut tuple = tuple.clone();
            for elem in &mut tuple.elems {
                *elem = owned(elem)?;
            }
            Some(Type::Tuple(tuple))
        }
        Type::Paren(paren) => owned(&paren.elem),
        Type::Group(group) => owned(&group.elem),
        Type::TraitObject(_) => None,
        other => Some(other.clone()),
    }
}

/// What owns the data a `&T` points to.
fn owned_referent(ty: &Type) -> Option<Type> {
    if let Type::Path(path) = ty
        && path.qself.is_none()
        && let Some(ident) = path.path.get_ident()
    {
        let owner = match ident.to_string().as_str() {
            "str" => Some(quote!(String)),
            "Path" => Some(quote!(PathBuf)),
            "OsStr" => Some(quote!(OsString)),
            "CStr" => Some(quote!(CString)),
            _ => None,
        };
        if let Some(owner) = owner {
            return syn::parse2(owner).ok();
        }
    }
    owned(ty)
}

/// The first generic type and the first associated type binding of a path
/// segment: `Into<String>` → `String`, `Iterator<Item = u8>` → `u8`.
fn single_generic(arguments: &PathArguments) -> (Option<&Type>, Option<&Type>) {
    let PathArguments::AngleBracketed(args) = arguments else {
        return (None, None);
    };
    let generic = args.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    let assoc = args.args.iter().find_map(|arg| match arg {
        GenericArgument::AssocType(assoc) => Some(&assoc.ty),
        _ => None,
    });
    (generic, assoc)
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;

    use super::*;

    fn ty(tokens: TokenStream) -> Type {
        syn::parse2(tokens).unwrap()
    }

    #[test]
    fn owned_suggestions() {
        let suggest = |tokens: TokenStream| owned(&ty(tokens)).map(|t| tokens_text(&t));
        assert_eq!(suggest(quote!(&str)).as_deref(), Some("String"));
        assert_eq!(suggest(quote!(&'a [u8])).as_deref(), Some("Vec<u8>"));
        assert_eq!(suggest(quote!(&Path)).as_deref(), Some("PathBuf"));
        assert_eq!(
            suggest(quote!(&mut Vec<&str>)).as_deref(),
            Some("Vec<String>")
        );
        assert_eq!(suggest(quote!(Cow<'a, str>)).as_deref(), Some("String"));
        assert_eq!(
            suggest(quote!(Cow<'static, [u64]>)).as_deref(),
            Some("Vec<u64>")
        );
        assert_eq!(
            suggest(quote!(Option<&'static str>)).as_deref(),
            Some("Option<String>")
        );
        assert_eq!(suggest(quote!(Parsed<'a>)), None);
        assert_eq!(
            suggest(quote!(impl Into<String>)).as_deref(),
            Some("String")
        );
        assert_eq!(suggest(quote!(impl AsRef<str>)).as_deref(), Some("String"));
        assert_eq!(
            suggest(quote!(impl Iterator<Item = &'a str>)).as_deref(),
            Some("Vec<String>")
        );
        assert_eq!(suggest(quote!(impl Fn(u8))), None);
    }
}
