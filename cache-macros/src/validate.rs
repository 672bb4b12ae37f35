//! Checking the options against the function, and deciding what to generate: the [`Plan`].

use proc_macro2::TokenStream;
use quote::{ToTokens, quote_spanned};
use syn::{
    FnArg, GenericArgument, Ident, ItemFn, LitStr, Pat, PathArguments, ReturnType, Type, TypePath,
};

use crate::Errors;
use crate::attr::{self, Expire, Options};

/// Everything the expansion needs, already checked.
pub(crate) struct Plan {
    pub(crate) item: ItemFn,
    pub(crate) prefix: Prefix,
    pub(crate) key: Vec<KeyStep>,
    pub(crate) cache: Option<CacheSource>,
    pub(crate) expire: Option<Expire>,
    pub(crate) stale: Option<Expire>,
    /// One `format!` per tag.
    pub(crate) tags: Vec<TokenStream>,
    pub(crate) lock: bool,
    /// `::cache_core`, or the path `crate = ..` gave.
    pub(crate) krate: syn::Path,
    pub(crate) output: Output,
}

/// Where the cache comes from: `cache = ..`, borrowed when it is reached through a reference
/// argument (the body then only copies the reference), cloned otherwise.
pub(crate) struct CacheSource {
    pub(crate) expr: syn::Expr,
    pub(crate) borrowed: bool,
}

/// How a key begins.
pub(crate) enum Prefix {
    /// `key_prefix = ".."`.
    Given(LitStr),
    /// A free function: `module::path::name`.
    Module(String),
    /// A method: `type_name::<Self>()::name`, so equal method names on two types differ.
    SelfType(String),
}

/// One step of building the key after the prefix.
pub(crate) enum KeyStep {
    /// `:` and an escaped part.
    Part(TokenStream),
    /// An escaped part, no separator (a hole of `key = ".."`).
    Hole(TokenStream),
    /// Literal text of `key = ".."`.
    Text(String),
}

/// What the function returns, as far as caching is concerned.
pub(crate) struct Output {
    pub(crate) ty: Type,
    pub(crate) kind: Kind,
    /// The tuple-struct wrapper around the cached value (`Json`, `web::Json`), without generics.
    pub(crate) wrapper: Option<syn::Path>,
}

pub(crate) enum Kind {
    /// `Result<T, E>` or an alias ending in `Result`: `Ok` is cached.
    Result,
    /// `Option<T>`: `Some` is cached, `None` too with `cache_none`.
    Option { cache_none: bool },
    /// Anything else: cached as is.
    Plain,
}

/// An argument binding that may become a key part.
struct Binding {
    ident: Ident,
    /// Left out by default: framework state (`State<..>`, `web::Data<..>`).
    state: bool,
}

pub(crate) fn plan(options: Options, item: ItemFn, errors: &mut Errors) -> Option<Plan> {
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            sig.fn_token,
            "#[cache_result] works on `async fn`: the cache is asynchronous (make this function async)",
        ));
    }
    let has_receiver = sig
        .inputs
        .iter()
        .any(|arg| matches!(arg, FnArg::Receiver(_)));
    let bindings = bindings(&item);

    for skipped in &options.skip {
        if !bindings.iter().any(|b| &b.ident == skipped) {
            errors.push(syn::Error::new_spanned(
                skipped,
                format!("skip names `{skipped}`, which is not an argument of this function"),
            ));
        }
    }
    // The argument that provides the cache is never part of the key.
    let cache_root = options.cache.as_ref().and_then(root_ident);
    let key = match &options.key {
        Some(template) => template_steps(template, &bindings, &options.skip, has_receiver, errors),
        None => bindings
            .iter()
            .filter(|b| {
                !b.state
                    && !options.skip.contains(&b.ident)
                    && cache_root.as_ref() != Some(&b.ident)
            })
            .map(|b| {
                let ident = &b.ident;
                KeyStep::Part(quote_spanned!(ident.span()=> #ident))
            })
            .collect(),
    };

    let name = sig.ident.to_string();
    let prefix = match options.key_prefix {
        Some(given) => Prefix::Given(given),
        None if has_receiver => Prefix::SelfType(name),
        None => Prefix::Module(name),
    };

    let mut output = output(sig, errors)?;
    if let Some(span) = options.cache_none {
        match &mut output.kind {
            Kind::Option { cache_none } => *cache_none = true,
            _ => errors.push(syn::Error::new(
                span,
                "cache_none applies to functions that return `Option<..>`",
            )),
        }
    }
    // A stale value stands in for a failure; `None` and plain values are answers, not failures.
    if let (Some(stale), false) = (&options.stale, matches!(output.kind, Kind::Result)) {
        let message = "stale applies to functions that return `Result<..>`: the last `Ok` is served when the body returns `Err`";
        match stale {
            Expire::Seconds(_) => errors.push(syn::Error::new_spanned(&output.ty, message)),
            Expire::Const(expr) => errors.push(syn::Error::new_spanned(expr, message)),
        }
    }
    let tags = options
        .tags
        .iter()
        .map(|tag| tag_format(tag, &bindings, has_receiver, errors))
        .collect();
    let cache = options.cache.map(|expr| {
        let borrowed = cache_root
            .as_ref()
            .is_some_and(|root| is_reference_argument(&item, root));
        CacheSource { expr, borrowed }
    });
    Some(Plan {
        item,
        prefix,
        key,
        cache,
        expire: options.expire,
        stale: options.stale,
        tags,
        lock: options.lock,
        krate: options
            .krate
            .unwrap_or_else(|| syn::parse_quote!(::cache_core)),
        output,
    })
}

/// The variable an expression starts from: `app` in `app.cache`, `&state.cache` or `cache.clone()`.
fn root_ident(expr: &syn::Expr) -> Option<Ident> {
    match expr {
        syn::Expr::Path(p) if p.qself.is_none() => p.path.get_ident().cloned(),
        syn::Expr::Field(f) => root_ident(&f.base),
        syn::Expr::MethodCall(m) => root_ident(&m.receiver),
        syn::Expr::Reference(r) => root_ident(&r.expr),
        syn::Expr::Paren(p) => root_ident(&p.expr),
        syn::Expr::Unary(u) => root_ident(&u.expr),
        _ => None,
    }
}

/// True when `name` is `self` taken by reference, or an argument `name: &T`.
fn is_reference_argument(item: &ItemFn, name: &Ident) -> bool {
    item.sig.inputs.iter().any(|arg| match arg {
        FnArg::Receiver(receiver) => name == "self" && receiver.reference.is_some(),
        FnArg::Typed(typed) => {
            matches!(&*typed.ty, Type::Reference(_))
                && matches!(&*typed.pat, Pat::Ident(p) if p.ident == *name && p.subpat.is_none())
        }
    })
}

/// Every identifier the arguments bind, in order, `self` excluded.
fn bindings(item: &ItemFn) -> Vec<Binding> {
    let mut out = Vec::new();
    for arg in &item.sig.inputs {
        if let FnArg::Typed(typed) = arg {
            let state = is_state(&typed.ty);
            let mut idents = Vec::new();
            pattern_idents(&typed.pat, &mut idents);
            out.extend(idents.into_iter().map(|ident| Binding { ident, state }));
        }
    }
    out
}

fn pattern_idents(pat: &Pat, out: &mut Vec<Ident>) {
    match pat {
        Pat::Ident(p) => {
            out.push(p.ident.clone());
            if let Some((_, sub)) = &p.subpat {
                pattern_idents(sub, out);
            }
        }
        Pat::Tuple(t) => t.elems.iter().for_each(|p| pattern_idents(p, out)),
        Pat::TupleStruct(t) => t.elems.iter().for_each(|p| pattern_idents(p, out)),
        Pat::Struct(s) => s.fields.iter().for_each(|f| pattern_idents(&f.pat, out)),
        Pat::Reference(r) => pattern_idents(&r.pat, out),
        Pat::Type(t) => pattern_idents(&t.pat, out),
        Pat::Paren(p) => pattern_idents(&p.pat, out),
        Pat::Slice(s) => s.elems.iter().for_each(|p| pattern_idents(p, out)),
        _ => {}
    }
}

/// Framework state is shared by every request: never a key part unless named in `key`.
fn is_state(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|seg| seg.ident == "State" || seg.ident == "Data")
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(TypePath { qself: None, path }) => path.segments.last(),
        Type::Reference(r) => last_segment(&r.elem),
        Type::Paren(p) => last_segment(&p.elem),
        Type::Group(g) => last_segment(&g.elem),
        _ => None,
    }
}

/// `key = "{user_id}:{day}"`: literal text as is, holes as escaped parts.
fn template_steps(
    template: &LitStr,
    bindings: &[Binding],
    skip: &[Ident],
    has_receiver: bool,
    errors: &mut Errors,
) -> Vec<KeyStep> {
    let text = template.value();
    let mut steps = vec![KeyStep::Text(":".to_owned())];
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                literal.push('}');
            }
            '{' => {
                let hole: String = chars.by_ref().take_while(|&c| c != '}').collect();
                if !literal.is_empty() {
                    steps.push(KeyStep::Text(std::mem::take(&mut literal)));
                }
                if let Some(expr) = hole_expr(
                    "key",
                    template,
                    hole.trim(),
                    bindings,
                    skip,
                    has_receiver,
                    errors,
                ) {
                    steps.push(KeyStep::Hole(expr));
                }
            }
            '}' => errors.push(syn::Error::new_spanned(
                template,
                "key has a `}` with no `{`; write `}}` for a literal brace",
            )),
            c => literal.push(c),
        }
    }
    attr::check_literal_text(template, &text.replace(['{', '}'], ""), "key", errors);
    if !literal.is_empty() {
        steps.push(KeyStep::Text(literal));
    }
    if !steps.iter().any(|s| matches!(s, KeyStep::Hole(_))) && errors.is_empty() {
        errors.push(syn::Error::new_spanned(
            template,
            "key names no argument, so every call would share one entry; use `{name}` holes",
        ));
    }
    steps
}

/// `tags = ["user:{user_id}"]`: a `format!` of the tag, each hole an argument shown with
/// `Display` (skipped arguments too: a tag is not a key).
fn tag_format(
    template: &LitStr,
    bindings: &[Binding],
    has_receiver: bool,
    errors: &mut Errors,
) -> TokenStream {
    let text = template.value();
    let mut format = String::new();
    let mut args = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                format.push_str("{{");
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                format.push_str("}}");
            }
            '{' => {
                let hole: String = chars.by_ref().take_while(|&c| c != '}').collect();
                if let Some(expr) = hole_expr(
                    "tag",
                    template,
                    hole.trim(),
                    bindings,
                    &[],
                    has_receiver,
                    errors,
                ) {
                    format.push_str("{}");
                    args.push(expr);
                }
            }
            '}' => errors.push(syn::Error::new_spanned(
                template,
                "tag has a `}` with no `{`; write `}}` for a literal brace",
            )),
            c => format.push(c),
        }
    }
    let span = template.span();
    quote_spanned!(span=> ::std::format!(#format #(, #args)*))
}

/// A hole: `name`, `name.field..`, `self` or `self.field..`.
fn hole_expr(
    what: &str,
    template: &LitStr,
    hole: &str,
    bindings: &[Binding],
    skip: &[Ident],
    has_receiver: bool,
    errors: &mut Errors,
) -> Option<TokenStream> {
    let mut path = hole.split('.');
    let root = path.next().unwrap_or_default();
    let fields: Vec<&str> = path.collect();
    let valid = |s: &str| {
        !s.is_empty() && syn::parse_str::<Ident>(s).is_ok()
            || s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty()
    };
    if root.is_empty()
        || !fields.iter().all(|f| valid(f))
        || (root != "self" && syn::parse_str::<Ident>(root).is_err())
    {
        errors.push(syn::Error::new_spanned(
            template,
            format!("{what} hole `{{{hole}}}` is not an argument name (or `name.field`)"),
        ));
        return None;
    }
    if root == "self" {
        if !has_receiver {
            errors.push(syn::Error::new_spanned(
                template,
                format!("{what} names `self`, but this function takes no `self`"),
            ));
            return None;
        }
    } else if !bindings.iter().any(|b| b.ident == root) {
        errors.push(syn::Error::new_spanned(
            template,
            format!("{what} names `{root}`, which is not an argument of this function"),
        ));
        return None;
    } else if skip.iter().any(|s| s == root) {
        errors.push(syn::Error::new_spanned(
            template,
            format!("{what} names `{root}`, which skip(..) leaves out of the key"),
        ));
        return None;
    }
    let span = template.span();
    let root = if root == "self" {
        quote_spanned!(span=> self)
    } else {
        Ident::new(root, span).into_token_stream()
    };
    let fields = fields.iter().map(|f| match f.parse::<u32>() {
        Ok(index) => syn::Index { index, span }.into_token_stream(),
        Err(_) => Ident::new(f, span).into_token_stream(),
    });
    Some(quote_spanned!(span=> #root #(.#fields)*))
}

fn output(sig: &syn::Signature, errors: &mut Errors) -> Option<Output> {
    let ty = match &sig.output {
        ReturnType::Default => {
            errors.push(syn::Error::new_spanned(
                &sig.ident,
                "#[cache_result] on a function that returns nothing: there is nothing to cache",
            ));
            return None;
        }
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let unsupported = match &ty {
        Type::ImplTrait(_) => Some(
            "`impl Trait` cannot be cached: return a concrete type (e.g. `Json<T>` rather than `impl IntoResponse`)",
        ),
        Type::Reference(_) => Some("a reference cannot be cached: return an owned value"),
        Type::TraitObject(_) => Some("a trait object cannot be cached: return a concrete type"),
        Type::Infer(_) | Type::Never(_) => Some("this return type cannot be cached"),
        _ => None,
    };
    if let Some(message) = unsupported {
        errors.push(syn::Error::new_spanned(&ty, message));
        return None;
    }
    let (kind, value) = match last_segment(&ty) {
        Some(seg) if seg.ident == "Option" => {
            (Kind::Option { cache_none: false }, first_type_arg(seg))
        }
        Some(seg) if seg.ident.to_string().ends_with("Result") => {
            (Kind::Result, first_type_arg(seg))
        }
        _ => (Kind::Plain, Some(&ty)),
    };
    let wrapper = value.and_then(json_wrapper);
    Some(Output { ty, kind, wrapper })
}

fn first_type_arg(seg: &syn::PathSegment) -> Option<&Type> {
    match &seg.arguments {
        PathArguments::AngleBracketed(args) => args.args.iter().find_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    }
}

/// `Json<T>` (axum) or `web::Json<T>` (actix-web): both tuple structs with a public `.0`.
fn json_wrapper(ty: &Type) -> Option<syn::Path> {
    let Type::Path(TypePath { qself: None, path }) = ty else {
        return None;
    };
    let last = path.segments.last()?;
    if last.ident != "Json" || first_type_arg(last).is_none() {
        return None;
    }
    let mut bare = path.clone();
    if let Some(seg) = bare.segments.last_mut() {
        seg.arguments = PathArguments::None;
    }
    Some(bare)
}
