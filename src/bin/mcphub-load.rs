//! `mcphub-load`: the concurrency test of seeds/000 (placeholder until it lands).
fn main() {
    eprintln!("mcphub-load: not built yet");
    std::process::exit(2);
}
