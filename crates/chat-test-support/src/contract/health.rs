//! `StoreHealth`.

use super::*;

/// A working store says so.
pub async fn the_health_check_passes<S: FullStore>(store: Arc<S>) {
    assert_eq!(store.check().await, Ok(()));
}
