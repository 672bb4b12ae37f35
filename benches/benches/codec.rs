//! Codecs: bincode 2 against JSON, encode + decode of each value, and the encoded sizes.

use std::hint::black_box;

use cache_benches::data::{daily_meals, small};
use cache_benches::{facts, settings};
use cache_core::Cacheable;
use cache_core::codec::{Bincode, Codec, Json};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};

fn roundtrip<C: Codec, T: Cacheable>(value: &T) -> T {
    let mut bytes = Vec::new();
    if let Err(err) = C::encode(value, &mut bytes) {
        panic!("{} cannot encode the bench value: {err}", C::NAME);
    }
    match C::decode(&bytes) {
        Ok(value) => value,
        Err(err) => panic!("{} cannot decode what it encoded: {err}", C::NAME),
    }
}

fn size<C: Codec, T: Cacheable>(value: &T) -> usize {
    let mut bytes = Vec::new();
    let _ = C::encode(value, &mut bytes);
    bytes.len()
}

fn codec<T: Cacheable>(c: &mut Criterion, name: &str, value: &T) {
    facts::record(
        &format!("codec_{name}_size"),
        &serde_json::json!({
            "bincode": size::<Bincode, T>(value),
            "json": size::<Json, T>(value),
        }),
    );
    let mut group = c.benchmark_group(format!("codec_{name}"));
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("bincode", |b| {
        b.iter(|| roundtrip::<Bincode, T>(black_box(value)));
    });
    group.bench_function("json", |b| {
        b.iter(|| roundtrip::<Json, T>(black_box(value)));
    });
    group.finish();
}

fn codec_benches(c: &mut Criterion) {
    codec(c, "1kib", &daily_meals());
    codec(c, "100b", &small());
}

criterion_group! {
    name = benches;
    config = settings::criterion();
    targets = codec_benches
}
criterion_main!(benches);
