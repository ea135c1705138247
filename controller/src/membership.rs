//! The membership Secret: the key speakers authenticate their heartbeats with
//! (docs/membership.md). The leading controller creates it when it is missing,
//! with 32 random bytes from the OS, and never overwrites an existing one: an
//! operator rotates keys by hand (`secondary`, then `primary`).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

/// Bytes of a key the controller generates.
pub const KEY_LEN: usize = 32;
/// Fewest bytes a key must have for speakers to use it.
pub const MIN_KEY_LEN: usize = 16;
/// The data key heartbeats are signed with.
pub const PRIMARY: &str = "primary";
/// The data key also accepted during a rotation.
pub const SECONDARY: &str = "secondary";

/// What [`ensure`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The Secret exists with usable keys; left alone.
    Present,
    /// The Secret exists but a key is missing or too short; left alone
    /// (the text says what is wrong), as overwriting it would cut off speakers
    /// that an operator configured on purpose.
    Unusable(String),
    /// The Secret was missing and we created it.
    Created,
}

/// Errors of creating the Secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading or creating Secret {0}: {1}")]
    Kube(String, #[source] kube::Error),
    #[error("OS random number generator: {0}")]
    Random(getrandom::Error),
}

/// The Secret to create: `primary` = `key`, labelled as ours.
pub fn new_secret(name: &str, namespace: &str, key: &[u8]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "ferrolb-controller".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            PRIMARY.to_owned(),
            ByteString(key.to_vec()),
        )])),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    }
}

/// Whether speakers can use this Secret's keys: `primary` present and both
/// keys at least [`MIN_KEY_LEN`] bytes; otherwise what is wrong.
pub fn check(secret: &Secret) -> Result<(), String> {
    let data = secret.data.clone().unwrap_or_default();
    let len = |k: &str| data.get(k).map(|v| v.0.len());
    match len(PRIMARY) {
        None => return Err(format!("data.{PRIMARY} is missing")),
        Some(n) if n < MIN_KEY_LEN => {
            return Err(format!(
                "data.{PRIMARY} has {n} bytes, at least {MIN_KEY_LEN} are needed"
            ));
        }
        Some(_) => {}
    }
    match len(SECONDARY) {
        Some(n) if n < MIN_KEY_LEN => Err(format!(
            "data.{SECONDARY} has {n} bytes, at least {MIN_KEY_LEN} are needed"
        )),
        _ => Ok(()),
    }
}

/// Reads the Secret and creates it when missing. AlreadyExists (another
/// replica, or an operator, was first) counts as present.
pub async fn ensure(api: &Api<Secret>, name: &str, namespace: &str) -> Result<Outcome, Error> {
    let kube_err = |e| Error::Kube(format!("{namespace}/{name}"), e);
    if let Some(s) = api.get_opt(name).await.map_err(kube_err)? {
        return Ok(match check(&s) {
            Ok(()) => Outcome::Present,
            Err(why) => Outcome::Unusable(why),
        });
    }
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key).map_err(Error::Random)?;
    match api
        .create(&PostParams::default(), &new_secret(name, namespace, &key))
        .await
    {
        Ok(_) => Ok(Outcome::Created),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Outcome::Present),
        Err(e) => Err(kube_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(data: &[(&str, usize)]) -> Secret {
        Secret {
            data: Some(
                data.iter()
                    .map(|(k, n)| ((*k).to_owned(), ByteString(vec![7; *n])))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn a_new_secret_holds_the_key_as_primary_and_our_label() {
        let s = new_secret("m", "ns", &[1; KEY_LEN]);
        assert_eq!(s.metadata.name.as_deref(), Some("m"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(
            s.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
            "ferrolb-controller"
        );
        assert_eq!(s.data.as_ref().unwrap()[PRIMARY].0, vec![1; KEY_LEN]);
        assert_eq!(check(&s), Ok(()));
    }

    #[test]
    fn keys_must_be_at_least_16_bytes_and_primary_present() {
        assert_eq!(check(&with(&[(PRIMARY, 16), (SECONDARY, 40)])), Ok(()));
        assert!(
            check(&with(&[(PRIMARY, 15)]))
                .unwrap_err()
                .contains("15 bytes")
        );
        assert!(
            check(&with(&[(PRIMARY, 32), (SECONDARY, 3)]))
                .unwrap_err()
                .contains("data.secondary has 3 bytes")
        );
        assert!(
            check(&with(&[(SECONDARY, 32)]))
                .unwrap_err()
                .contains("data.primary is missing")
        );
        assert!(check(&Secret::default()).is_err());
    }
}
