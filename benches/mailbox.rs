//! The tick-thread → writer hand-off: publishing a snapshot into a subscriber mailbox and
//! taking it out, the replace path for a slow reader, and reliable frames.

use criterion::{Criterion, criterion_group, criterion_main};
use pylon_tick::mailbox::{DEFAULT_RELIABLE_CAPACITY, Mailbox};

#[derive(Clone)]
struct Frame {
    tick: u64,
    _payload: std::sync::Arc<[u8]>,
}

fn bench_mailbox(c: &mut Criterion) {
    let payload: std::sync::Arc<[u8]> = vec![0_u8; 256].into();
    let frame = |tick| Frame { tick, _payload: payload.clone() };
    let mut group = c.benchmark_group("mailbox");

    let mailbox = Mailbox::new(DEFAULT_RELIABLE_CAPACITY);
    let mut tick = 0;
    group.bench_function("publish_then_take", |b| {
        b.iter(|| {
            tick += 1;
            mailbox.publish_latest(frame(tick));
            mailbox.try_recv().map(|f| f.tick)
        });
    });

    let slow = Mailbox::new(DEFAULT_RELIABLE_CAPACITY);
    slow.publish_latest(frame(0));
    group.bench_function("publish_replacing_unsent", |b| {
        b.iter(|| {
            tick += 1;
            slow.publish_latest(frame(tick))
        });
    });

    let reliable = Mailbox::new(DEFAULT_RELIABLE_CAPACITY);
    group.bench_function("push_reliable_then_take", |b| {
        b.iter(|| {
            tick += 1;
            let pushed = reliable.push_reliable(frame(tick)).is_ok();
            (pushed, reliable.try_recv().map(|f| f.tick))
        });
    });
    group.finish();
}

criterion_group!(benches, bench_mailbox);
criterion_main!(benches);
