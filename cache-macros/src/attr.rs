//! Parsing the attribute's options: `expire`, `stale`, `key_prefix`, `key`, `skip(..)`, `cache`,
//! `cache_none`, `tags = [..]`, `lock`, `crate`.
//!
//! Every problem is recorded and parsing goes on, so that the user sees all of them at once.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, LitStr, Token, UnOp};

use crate::Errors;

/// A number of seconds (`expire`, `stale`), as written.
pub(crate) enum Expire {
    /// A positive integer literal, checked here.
    Seconds(u64),
    /// Any other expression: a const expression of type `u64`, checked to be positive at
    /// compile time. It cannot name `Self` or generic parameters (use a module-level const).
    Const(Box<Expr>),
}

/// The options, each with the span of where it was written.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) expire: Option<Expire>,
    pub(crate) stale: Option<Expire>,
    pub(crate) key_prefix: Option<LitStr>,
    pub(crate) key: Option<LitStr>,
    pub(crate) skip: Vec<Ident>,
    pub(crate) cache: Option<Expr>,
    pub(crate) cache_none: Option<Span>,
    pub(crate) tags: Vec<LitStr>,
    pub(crate) lock: bool,
    /// The path of `cache-core` for a user who renamed the dependency (`crate = my_cache`).
    pub(crate) krate: Option<syn::Path>,
}

const KNOWN: &str =
    "expire, stale, key_prefix, key, skip(..), cache, cache_none, tags, lock, crate";

/// Reads the options; problems go to `errors`.
pub(crate) fn parse(attr: TokenStream, errors: &mut Errors) -> Options {
    let mut options = Options::default();
    let mut seen: Vec<String> = Vec::new();
    let parser = syn::meta::parser(|meta| {
        let name = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        if seen.contains(&name) {
            errors.push(syn::Error::new_spanned(
                &meta.path,
                format!("duplicate option `{name}`"),
            ));
            return skip_value(&meta);
        }
        seen.push(name.clone());
        match name.as_str() {
            "expire" => {
                let value: Expr = meta.value()?.parse()?;
                options.expire = seconds(value, "expire", errors);
            }
            "stale" => {
                let value: Expr = meta.value()?.parse()?;
                options.stale = seconds(value, "stale", errors);
            }
            "key_prefix" => {
                let prefix: LitStr = meta.value()?.parse()?;
                check_literal_text(&prefix, &prefix.value(), "key_prefix", errors);
                if prefix.value().is_empty() {
                    errors.push(syn::Error::new_spanned(&prefix, "key_prefix is empty; leave it out for the default (module path and function name)"));
                }
                options.key_prefix = Some(prefix);
            }
            "key" => options.key = Some(meta.value()?.parse()?),
            "cache" => options.cache = Some(meta.value()?.parse()?),
            "crate" => options.krate = crate_path(meta.value()?.parse()?, errors),
            "skip" => {
                meta.parse_nested_meta(|inner| {
                    match inner.path.get_ident() {
                        Some(ident) => options.skip.push(ident.clone()),
                        None => errors.push(syn::Error::new_spanned(
                            &inner.path,
                            "skip(..) takes argument names",
                        )),
                    }
                    Ok(())
                })?;
            }
            "tags" => {
                let value: Expr = meta.value()?.parse()?;
                match value {
                    Expr::Array(array) => {
                        for element in array.elems {
                            match element {
                                Expr::Lit(ExprLit {
                                    lit: Lit::Str(tag), ..
                                }) if !tag.value().is_empty() => options.tags.push(tag),
                                other => errors.push(syn::Error::new_spanned(
                                    other,
                                    "a tag is a non-empty string literal, such as \"user:{user_id}\"",
                                )),
                            }
                        }
                    }
                    other => errors.push(syn::Error::new_spanned(
                        other,
                        "tags takes a list of string literals: tags = [\"user:{user_id}\"]",
                    )),
                }
            }
            "lock" => {
                let value: Expr = meta.value()?.parse()?;
                match value {
                    Expr::Lit(ExprLit {
                        lit: Lit::Bool(flag),
                        ..
                    }) => options.lock = flag.value,
                    other => errors.push(syn::Error::new_spanned(
                        other,
                        "lock takes `true` or `false`",
                    )),
                }
            }
            "cache_none" => {
                if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
                    errors.push(syn::Error::new_spanned(
                        &meta.path,
                        "cache_none is a flag: write `cache_none` alone",
                    ));
                    return skip_value(&meta);
                }
                options.cache_none = Some(meta.path.span());
            }
            _ => {
                errors.push(syn::Error::new_spanned(
                    &meta.path,
                    format!(
                        "unknown option `{}`; the options are: {KNOWN}",
                        path_text(&meta.path)
                    ),
                ));
                return skip_value(&meta);
            }
        }
        Ok(())
    });
    if let Err(err) = parser.parse2(attr) {
        errors.push(err);
    }
    options
}

/// `crate = my_cache` or, as serde writes it, `crate = "my_cache"`.
fn crate_path(value: Expr, errors: &mut Errors) -> Option<syn::Path> {
    match value {
        Expr::Path(path) if path.qself.is_none() => Some(path.path),
        Expr::Lit(ExprLit {
            lit: Lit::Str(text),
            ..
        }) => match text.parse::<syn::Path>() {
            Ok(path) => Some(path),
            Err(_) => {
                errors.push(syn::Error::new_spanned(
                    &text,
                    "crate takes the path of cache-core, such as `crate = my_cache`",
                ));
                None
            }
        },
        other => {
            errors.push(syn::Error::new_spanned(
                other,
                "crate takes the path of cache-core, such as `crate = my_cache`",
            ));
            None
        }
    }
}

fn path_text(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// Consumes an option's value (`= expr` or `(..)`) so parsing can go on after a problem.
fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        let _: Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        let _: TokenStream = content.parse()?;
    }
    Ok(())
}

/// A positive number of seconds for the option `name`.
fn seconds(value: Expr, name: &str, errors: &mut Errors) -> Option<Expire> {
    let example = if name == "stale" { 600 } else { 1800 };
    let what = format!(
        "{name} is a positive number of seconds: an integer literal such as `{name} = {example}`, or a const expression"
    );
    match &value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => match int.base10_parse::<u64>() {
            Ok(0) => {
                errors.push(syn::Error::new_spanned(int, zero_message(name)));
                None
            }
            Ok(secs) => Some(Expire::Seconds(secs)),
            Err(_) => {
                errors.push(syn::Error::new_spanned(int, &what));
                None
            }
        },
        Expr::Lit(lit) => {
            errors.push(syn::Error::new_spanned(lit, &what));
            None
        }
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), ..
        }) => {
            errors.push(syn::Error::new_spanned(&value, &what));
            None
        }
        _ => Some(Expire::Const(Box::new(value))),
    }
}

fn zero_message(name: &str) -> String {
    if name == "stale" {
        "stale = 0 is no stale window; leave `stale` out instead".to_owned()
    } else {
        format!("{name} = 0 would expire every value at once; use a positive number of seconds")
    }
}

/// Literal key text is written into keys as is, so it must not hold what a glob or the
/// escaping reads specially.
pub(crate) fn check_literal_text(lit: &LitStr, text: &str, what: &str, errors: &mut Errors) {
    if let Some(bad) = text
        .chars()
        .find(|c| matches!(c, '*' | '?' | '[' | ']' | '\\' | '%') || c.is_whitespace())
    {
        errors.push(syn::Error::new_spanned(
            lit,
            format!("{what} contains {bad:?}, which would act as a glob pattern or escape in keys; use letters, digits and `:-_.`"),
        ));
    }
}
