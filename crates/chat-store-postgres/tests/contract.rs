//! The store contract suite, each case on a database of its own (a copy of
//! the migrated template, dropped after the test).

chat_test_support::store_contract_tests!(chat_test_support::pg::test_store);
