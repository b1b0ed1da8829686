//! bcrypt password hashing, off the async executor.

use std::fmt;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chat_domain::{DomainError, DomainResult, Password, PasswordHash, PasswordHasher};
use sha2::{Digest, Sha256};

/// Hashes passwords with bcrypt at a fixed cost.
///
/// bcrypt reads only the first 72 bytes of its input, and a valid password
/// may be 128 characters (up to 512 bytes of UTF-8): two passwords sharing a
/// 72-byte prefix would match each other. So the password is first reduced
/// with SHA-256 and bcrypt runs over the base64 of that digest (44 ASCII
/// bytes, no NUL), the scheme Dropbox described. Consequence: hashes made by
/// plain bcrypt of the password (as the old Go service stored them) do not
/// verify here.
///
/// Hashing and verifying run on tokio's blocking pool, so they must be
/// called inside a tokio runtime.
#[derive(Clone)]
pub struct BcryptHasher {
    cost: u32,
    decoy: PasswordHash,
}

impl BcryptHasher {
    /// The lowest cost bcrypt accepts (tests use it: it is fast).
    pub const MIN_COST: u32 = 4;
    /// The highest cost bcrypt accepts.
    pub const MAX_COST: u32 = 31;

    /// A hasher at `cost` (4-31; SPEC's default BCRYPT_COST is 12).
    ///
    /// Computes the decoy hash once, here, at the same cost: this blocks
    /// the calling thread for one hash (about a quarter of a second at cost
    /// 12), so call it at startup, or use [`BcryptHasher::new_async`] from
    /// async code.
    pub fn new(cost: u32) -> DomainResult<Self> {
        if !(Self::MIN_COST..=Self::MAX_COST).contains(&cost) {
            return Err(DomainError::invalid("bcrypt_cost", "must be 4-31"));
        }
        // Two v4 UUIDs: 244 random bits that nobody knows, so the decoy
        // matches no password anyone can type.
        let secret = format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let decoy = hash_blocking(&secret, cost)?;
        Ok(Self { cost, decoy })
    }

    /// [`BcryptHasher::new`] on the blocking pool, for async callers.
    pub async fn new_async(cost: u32) -> DomainResult<Self> {
        run_blocking(move || Self::new(cost)).await?
    }

    /// The bcrypt cost in use.
    pub fn cost(&self) -> u32 {
        self.cost
    }
}

impl fmt::Debug for BcryptHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BcryptHasher")
            .field("cost", &self.cost)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl PasswordHasher for BcryptHasher {
    async fn hash(&self, password: &Password) -> DomainResult<PasswordHash> {
        let password = password.clone();
        let cost = self.cost;
        run_blocking(move || hash_blocking(password.expose(), cost)).await?
    }

    async fn verify(&self, password: &Password, hash: &PasswordHash) -> DomainResult<bool> {
        let password = password.clone();
        let hash = hash.clone();
        run_blocking(move || verify_blocking(password.expose(), &hash)).await?
    }

    fn decoy_hash(&self) -> PasswordHash {
        self.decoy.clone()
    }
}

/// What bcrypt actually sees: base64(SHA-256(password)), 44 bytes, so every
/// byte of a long password counts (see [`BcryptHasher`]).
fn prehash(password: &str) -> String {
    STANDARD.encode(Sha256::digest(password.as_bytes()))
}

fn hash_blocking(password: &str, cost: u32) -> DomainResult<PasswordHash> {
    bcrypt::hash(prehash(password), cost)
        .map(PasswordHash::new)
        .map_err(|e| DomainError::internal(format!("bcrypt hashing failed: {e}")))
}

fn verify_blocking(password: &str, hash: &PasswordHash) -> DomainResult<bool> {
    // A hash bcrypt cannot parse is corrupt stored data, not a wrong
    // password: report it rather than hide it.
    bcrypt::verify(prehash(password), hash.as_str())
        .map_err(|e| DomainError::internal(format!("stored password hash is unusable: {e}")))
}

async fn run_blocking<T, F>(work: F) -> DomainResult<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DomainError::internal(format!("password hashing task failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> BcryptHasher {
        BcryptHasher::new(BcryptHasher::MIN_COST).expect("valid cost")
    }

    fn password(raw: &str) -> Password {
        Password::parse(raw).expect("valid password")
    }

    #[test]
    fn the_cost_must_be_one_bcrypt_accepts() {
        for bad in [0, 3, 32, 100] {
            let err = BcryptHasher::new(bad).expect_err("out of range");
            assert_eq!(err.code(), "validation_error");
        }
        assert_eq!(hasher().cost(), 4);
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = hasher();
        let hash = hasher
            .hash(&password("correct horse"))
            .await
            .expect("hashes");
        assert!(hash.as_str().starts_with("$2"));
        assert!(hasher
            .verify(&password("correct horse"), &hash)
            .await
            .expect("verifies"));
        assert!(!hasher
            .verify(&password("correct horsf"), &hash)
            .await
            .expect("verifies"));
    }

    #[tokio::test]
    async fn hashing_twice_salts_differently() {
        let hasher = hasher();
        let p = password("same password");
        let a = hasher.hash(&p).await.expect("hashes");
        let b = hasher.hash(&p).await.expect("hashes");
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn passwords_sharing_a_72_byte_prefix_do_not_match() {
        let hasher = hasher();
        let prefix = "p".repeat(72);
        let one = password(&format!("{prefix}-one"));
        let two = password(&format!("{prefix}-two"));
        let hash = hasher.hash(&one).await.expect("hashes");
        assert!(hasher.verify(&one, &hash).await.expect("verifies"));
        assert!(!hasher.verify(&two, &hash).await.expect("verifies"));
    }

    #[tokio::test]
    async fn long_multibyte_passwords_work() {
        let hasher = hasher();
        let long = password(&"é".repeat(128));
        let hash = hasher.hash(&long).await.expect("hashes");
        assert!(hasher.verify(&long, &hash).await.expect("verifies"));
        let other = password(&format!("{}e", "é".repeat(127)));
        assert!(!hasher.verify(&other, &hash).await.expect("verifies"));
    }

    #[tokio::test]
    async fn the_decoy_matches_nothing_and_has_the_same_cost() {
        let hasher = hasher();
        let decoy = hasher.decoy_hash();
        assert_eq!(decoy, hasher.decoy_hash(), "computed once");
        assert!(decoy.as_str().starts_with("$2b$04$"));
        for guess in ["decoy-password", "password", "12345678"] {
            assert!(!hasher
                .verify(&password(guess), &decoy)
                .await
                .expect("verifies"));
        }
        let other = BcryptHasher::new(4).expect("valid cost").decoy_hash();
        assert_ne!(decoy, other, "each hasher draws its own secret");
    }

    #[tokio::test]
    async fn a_corrupt_hash_is_an_internal_error() {
        let err = hasher()
            .verify(&password("whatever1"), &PasswordHash::new("not-bcrypt"))
            .await
            .expect_err("unparseable");
        assert_eq!(err.code(), "internal_error");
    }

    #[tokio::test]
    async fn new_async_builds_a_working_hasher() {
        let hasher = BcryptHasher::new_async(4).await.expect("valid cost");
        let p = password("async password");
        let hash = hasher.hash(&p).await.expect("hashes");
        assert!(hasher.verify(&p, &hash).await.expect("verifies"));
        assert!(BcryptHasher::new_async(2).await.is_err());
    }
}
