//! The store contract suite, run against the in-memory store.

use std::sync::Arc;

use chat_store_memory::MemoryStore;

chat_test_support::store_contract_tests!(|| async { Arc::new(MemoryStore::new()) });
