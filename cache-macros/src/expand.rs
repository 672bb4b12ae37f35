//! Generating the read-through: the function keeps its signature, attributes and visibility;
//! its body becomes the loader of `::cache_core::__private::read_through`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::Errors;
use crate::attr::Expire;
use crate::validate::{CacheSource, KeyStep, Kind, Plan, Prefix};

/// Parses, validates and expands; on any problem, the function unchanged plus every error.
pub(crate) fn cache_result(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = crate::attr::parse(attr, &mut errors);
    let function: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let err =
                syn::Error::new_spanned(&item, "#[cache_result] goes on an `async fn` with a body")
                    .to_compile_error();
            return quote!(#item #err);
        }
    };
    let plan = crate::validate::plan(options, function.clone(), &mut errors);
    match (plan, errors.into_result()) {
        (Some(plan), Ok(())) => expand(plan),
        (_, Err(err)) => {
            let err = err.to_compile_error();
            quote!(#function #err)
        }
        (None, Ok(())) => quote!(#function),
    }
}

fn expand(plan: Plan) -> TokenStream {
    let Plan {
        item,
        prefix,
        key,
        cache,
        expire,
        stale,
        tags,
        lock,
        krate,
        output,
    } = plan;
    let syn::ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = item;
    let private = quote!(#krate::__private);

    let start = match prefix {
        Prefix::Given(lit) => quote!(#private::key(#lit)),
        Prefix::Module(name) => {
            quote!(#private::key(::core::concat!(::core::module_path!(), "::", #name)))
        }
        Prefix::SelfType(name) => {
            let tail = format!("::{name}");
            quote! {{
                let mut __key = #private::key("");
                #private::append_type_name(&mut __key, ::core::any::type_name::<Self>());
                #private::append_raw(&mut __key, #tail);
                __key
            }}
        }
    };
    let steps = key.into_iter().map(|step| match step {
        KeyStep::Part(expr) => {
            quote_spanned!(expr.span()=> #private::push(&mut __cache_result_key, &#expr);)
        }
        KeyStep::Hole(expr) => {
            quote_spanned!(expr.span()=> #private::append(&mut __cache_result_key, &#expr);)
        }
        KeyStep::Text(text) => quote!(#private::append_raw(&mut __cache_result_key, #text);),
    });

    let (cache_binding, cache_ref) = match cache {
        Some(CacheSource {
            expr,
            borrowed: true,
        }) => (
            quote!(let __cache_result_cache = #private::cache_ref(&(#expr));),
            quote!(__cache_result_cache),
        ),
        Some(CacheSource {
            expr,
            borrowed: false,
        }) => (
            quote!(let __cache_result_cache = #private::cache_of(&(#expr));),
            quote!(&__cache_result_cache),
        ),
        None => (
            quote!(let __cache_result_cache = #private::global();),
            quote!(__cache_result_cache),
        ),
    };
    let expire = seconds(expire, "expire");
    let stale = seconds(stale, "stale");

    let ty = &output.ty;
    // `.0` unwraps and the bare path rewraps a `Json<T>` around the cached `T`.
    let (unwrap, rewrap) = match &output.wrapper {
        Some(path) => (quote!(.0), quote!(#path)),
        None => (quote!(), quote!(::core::convert::identity)),
    };
    let (loader_tail, finish) = match output.kind {
        Kind::Result => (
            quote!(__ret.map(|__v| __v #unwrap)),
            quote!(__result.map(#rewrap)),
        ),
        Kind::Option { cache_none: false } => (
            quote! {
                match __ret {
                    ::core::option::Option::Some(__v) => ::core::result::Result::Ok(__v #unwrap),
                    ::core::option::Option::None => ::core::result::Result::Err(#private::NotCached),
                }
            },
            quote!(__result.ok().map(#rewrap)),
        ),
        Kind::Option { cache_none: true } => (
            quote!(::core::result::Result::Ok::<_, ::core::convert::Infallible>(__ret.map(|__v| __v #unwrap))),
            quote!(#private::infallible(__result).map(#rewrap)),
        ),
        Kind::Plain => (
            quote!(::core::result::Result::Ok::<_, ::core::convert::Infallible>(__ret #unwrap)),
            quote!((#rewrap)(#private::infallible(__result))),
        ),
    };
    // The whole call is spanned at the return type: a value that cannot be cached, or an error
    // that cannot be shared, is reported there rather than on the attribute.
    // The crate path takes the return type's span too, as the rest of the call does.
    let private_at_ty = respan(quote!(#krate::__private), ty.span());
    let read_through = quote_spanned! {ty.span()=>
        let __result = #private_at_ty::read_through(#cache_ref, __cache_result_key, #expire, #stale, __cache_result_tags, #lock, move || async move {
            let __ret: #ty = #block;
            #loader_tail
        })
        .await;
    };

    quote! {
        #(#attrs)*
        #vis #sig {
            let mut __cache_result_key = #start;
            #(#steps)*
            let __cache_result_tags: ::std::vec::Vec<::std::string::String> = ::std::vec![#(#tags),*];
            #cache_binding
            #read_through
            #finish
        }
    }
}

/// `Option<u64>` tokens for an `expire` or `stale` option.
fn seconds(value: Option<Expire>, name: &str) -> TokenStream {
    match value {
        Some(Expire::Seconds(secs)) => quote!(::core::option::Option::Some(#secs)),
        // An item const is checked even if the function is never called; an inline `const {}`
        // would only be checked where the function is compiled to code.
        Some(Expire::Const(expr)) => {
            let message = format!("#[cache_result]: {name} must be a positive number of seconds");
            let check = quote_spanned! {expr.span()=>
                const _: () = ::core::assert!(__CACHE_RESULT_SECONDS > 0, #message);
            };
            quote! {{
                const __CACHE_RESULT_SECONDS: u64 = #expr;
                #check
                ::core::option::Option::Some(__CACHE_RESULT_SECONDS)
            }}
        }
        None => quote!(::core::option::Option::None),
    }
}

/// `tokens` with every span set to `span`.
fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            token.set_span(span);
            token
        })
        .collect()
}
