//! `.Capabilities`: the Kubernetes version (`--kube-version`), the API versions (`--api-versions`) and the
//! Helm version templates see, as helm v4.1 `template` gives them.

use gotmpl::FuncResult;
use std::rc::Rc;

use gotmpl::encoding::json::write_json_string;
use gotmpl::{Object, Value};

/// The Kubernetes version `helm template` assumes without `--kube-version` (helm v4.1.4).
pub const DEFAULT_KUBE_VERSION: &str = "v1.35.0";

/// The API versions `helm template` assumes (helm v4.1.4's client-go scheme), in its order.
const DEFAULT_API_VERSIONS: &[&str] = &[
    "v1",
    "admissionregistration.k8s.io/v1",
    "admissionregistration.k8s.io/v1alpha1",
    "admissionregistration.k8s.io/v1beta1",
    "internal.apiserver.k8s.io/v1alpha1",
    "apps/v1",
    "apps/v1beta1",
    "apps/v1beta2",
    "authentication.k8s.io/v1",
    "authentication.k8s.io/v1alpha1",
    "authentication.k8s.io/v1beta1",
    "authorization.k8s.io/v1",
    "authorization.k8s.io/v1beta1",
    "autoscaling/v1",
    "autoscaling/v2",
    "autoscaling/v2beta1",
    "autoscaling/v2beta2",
    "batch/v1",
    "batch/v1beta1",
    "certificates.k8s.io/v1",
    "certificates.k8s.io/v1beta1",
    "certificates.k8s.io/v1alpha1",
    "coordination.k8s.io/v1alpha2",
    "coordination.k8s.io/v1beta1",
    "coordination.k8s.io/v1",
    "discovery.k8s.io/v1",
    "discovery.k8s.io/v1beta1",
    "events.k8s.io/v1",
    "events.k8s.io/v1beta1",
    "extensions/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1",
    "flowcontrol.apiserver.k8s.io/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1beta2",
    "flowcontrol.apiserver.k8s.io/v1beta3",
    "networking.k8s.io/v1",
    "networking.k8s.io/v1beta1",
    "node.k8s.io/v1",
    "node.k8s.io/v1alpha1",
    "node.k8s.io/v1beta1",
    "policy/v1",
    "policy/v1beta1",
    "rbac.authorization.k8s.io/v1",
    "rbac.authorization.k8s.io/v1beta1",
    "rbac.authorization.k8s.io/v1alpha1",
    "resource.k8s.io/v1",
    "resource.k8s.io/v1beta2",
    "resource.k8s.io/v1beta1",
    "resource.k8s.io/v1alpha3",
    "scheduling.k8s.io/v1alpha1",
    "scheduling.k8s.io/v1beta1",
    "scheduling.k8s.io/v1",
    "storage.k8s.io/v1beta1",
    "storage.k8s.io/v1",
    "storage.k8s.io/v1alpha1",
    "storagemigration.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1",
];

/// A Go struct's JSON: string fields in declaration order, as `json.Marshal` writes them.
fn struct_json(fields: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(&mut out, name, true);
        out.push(':');
        write_json_string(&mut out, value, true);
    }
    out.push('}');
    out
}

/// `.Capabilities.KubeVersion`: prints (and is checked against `kubeVersion`) as the normalized version.
#[derive(Debug, Clone)]
pub struct KubeVersion {
    /// The version as given, with a `v` prefix (`v1.33.4-gke.1245000`).
    pub version: String,
    /// Only the numeric components (`v1.33.4`): what `%v` prints and constraints are checked against.
    pub normalized: String,
    /// The major version.
    pub major: String,
    /// The minor version.
    pub minor: String,
}

/// A Kubernetes version that does not parse; worded as Kubernetes' version parser words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeVersionError {
    /// No leading number.
    #[error("could not parse {0:?} as version")]
    NotAVersion(String),
    /// Fewer than two numeric components, or one that is not a number.
    #[error("illegal version string {0:?}")]
    Illegal(String),
}

impl KubeVersion {
    /// Parses a Kubernetes version as helm v4 does (Kubernetes' generic version parser: at least two
    /// numeric components, optional `v` prefix, any suffix).
    pub fn parse(version: &str) -> Result<KubeVersion, KubeVersionError> {
        let trimmed = version.trim();
        let body = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let numeric_end = body
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(body.len());
        let mut numeric = &body[..numeric_end];
        // A trailing `.` belongs to the suffix, not the numbers.
        while numeric.ends_with('.') {
            numeric = &numeric[..numeric.len() - 1];
        }
        if numeric.is_empty() || !numeric.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(KubeVersionError::NotAVersion(version.to_string()));
        }
        let parts: Vec<&str> = numeric.split('.').collect();
        if parts.len() < 2 {
            return Err(KubeVersionError::Illegal(version.to_string()));
        }
        let mut numbers = Vec::with_capacity(parts.len());
        for part in &parts {
            let n: u64 = part
                .parse()
                .map_err(|_| KubeVersionError::Illegal(version.to_string()))?;
            numbers.push(n.to_string());
        }
        let full = if version.starts_with('v') {
            version.to_string()
        } else {
            format!("v{version}")
        };
        Ok(KubeVersion {
            version: full,
            normalized: format!("v{}", numbers.join(".")),
            major: numbers[0].clone(),
            minor: numbers[1].clone(),
        })
    }
}

impl Object for KubeVersion {
    fn type_name(&self) -> &str {
        "common.KubeVersion"
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Version" | "GitVersion" => Some(Value::from(self.version.as_str())),
            "Major" => Some(Value::from(self.major.as_str())),
            "Minor" => Some(Value::from(self.minor.as_str())),
            "String" => Some(Value::from(self.normalized.as_str())),
            _ => None,
        }
    }

    fn display(&self) -> String {
        self.normalized.clone()
    }

    fn json(&self) -> Option<String> {
        Some(struct_json(&[
            ("Version", &self.version),
            ("Major", &self.major),
            ("Minor", &self.minor),
        ]))
    }
}

/// `.Capabilities.APIVersions`: a list of API versions with a `Has` method.
#[derive(Debug, Clone)]
pub struct ApiVersions {
    versions: Vec<String>,
}

impl ApiVersions {
    /// The default API versions followed by `extra` (`--api-versions`).
    pub fn with_extra(extra: &[String]) -> ApiVersions {
        let mut versions: Vec<String> =
            DEFAULT_API_VERSIONS.iter().map(|v| v.to_string()).collect();
        // `--api-versions` is a list flag: `-a x/v1,y/v1` adds two.
        versions.extend(extra.iter().flat_map(|v| v.split(',')).map(str::to_string));
        ApiVersions { versions }
    }

    /// True when `version` (`apps/v1`, or `apps/v1/Deployment`) is in the set.
    pub fn has(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }
}

impl Object for ApiVersions {
    fn type_name(&self) -> &str {
        "common.VersionSet"
    }

    fn field(&self, name: &str) -> Option<Value> {
        let _ = name;
        None
    }

    fn call(&self, name: &str, args: Vec<Value>) -> Option<FuncResult> {
        match name {
            "Has" => Some(match args.as_slice() {
                [Value::Str(v)] => Ok(Value::Bool(self.has(v))),
                [other] => Err(format!(
                    "wrong type for value; expected string; got {}",
                    other.type_name()
                )
                .into()),
                _ => Err(format!("wrong number of args for Has: want 1 got {}", args.len()).into()),
            }),
            _ => None,
        }
    }

    fn display(&self) -> String {
        format!("[{}]", self.versions.join(" "))
    }

    fn json(&self) -> Option<String> {
        let mut out = String::from("[");
        for (i, v) in self.versions.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_json_string(&mut out, v, true);
        }
        out.push(']');
        Some(out)
    }

    fn entries(&self) -> Option<Vec<(Value, Value)>> {
        let items = self.versions.iter().enumerate();
        Some(
            items
                .map(|(i, v)| (Value::Int(i as i64), Value::from(v.as_str())))
                .collect(),
        )
    }
}

/// `.Capabilities.HelmVersion`: helm v4.1.4's build information (Go's field names; JSON with its tags).
#[derive(Debug, Clone)]
struct HelmVersion;

/// Field name, JSON name, value.
const HELM_VERSION: [(&str, &str, &str); 5] = [
    ("Version", "version", "v4.1.4"),
    (
        "GitCommit",
        "git_commit",
        "05fa37973dc9e42b76e1d2883494c87174b6074f",
    ),
    ("GitTreeState", "git_tree_state", "clean"),
    ("GoVersion", "go_version", "go1.25.9"),
    ("KubeClientVersion", "kube_client_version", "v1.35"),
];

impl Object for HelmVersion {
    fn type_name(&self) -> &str {
        "version.BuildInfo"
    }

    fn field(&self, name: &str) -> Option<Value> {
        HELM_VERSION
            .iter()
            .find(|(field, _, _)| *field == name)
            .map(|(_, _, v)| Value::from(*v))
    }

    fn display(&self) -> String {
        let fields: Vec<&str> = HELM_VERSION.iter().map(|(_, _, v)| *v).collect();
        format!("{{{}}}", fields.join(" "))
    }

    fn json(&self) -> Option<String> {
        let fields: Vec<(&str, &str)> = HELM_VERSION.iter().map(|(_, tag, v)| (*tag, *v)).collect();
        Some(struct_json(&fields))
    }
}

/// `.Capabilities` for a render.
pub(crate) fn capabilities(kube: &KubeVersion, apis: &[String]) -> Value {
    Value::Object(Rc::new(Capabilities {
        kube_version: Rc::new(kube.clone()),
        api_versions: Rc::new(ApiVersions::with_extra(apis)),
    }))
}

/// `.Capabilities`: a struct (its JSON keeps the field order: KubeVersion, APIVersions, HelmVersion).
struct Capabilities {
    kube_version: Rc<KubeVersion>,
    api_versions: Rc<ApiVersions>,
}

impl Object for Capabilities {
    fn type_name(&self) -> &str {
        "*common.Capabilities"
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "KubeVersion" => Some(Value::Object(self.kube_version.clone())),
            "APIVersions" => Some(Value::Object(self.api_versions.clone())),
            "HelmVersion" => Some(Value::Object(Rc::new(HelmVersion))),
            _ => None,
        }
    }

    fn display(&self) -> String {
        let kube = &self.kube_version;
        format!(
            "&{{{} {} {}}}",
            kube.display(),
            self.api_versions.display(),
            HelmVersion.display()
        )
    }

    fn json(&self) -> Option<String> {
        Some(format!(
            "{{\"KubeVersion\":{},\"APIVersions\":{},\"HelmVersion\":{}}}",
            self.kube_version.json()?,
            self.api_versions.json()?,
            HelmVersion.json()?
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_versions_parse_as_helm_v4_parses_them() {
        let v = KubeVersion::parse("v1.28.3-gke.100").unwrap();
        assert_eq!(
            (v.version.as_str(), v.normalized.as_str()),
            ("v1.28.3-gke.100", "v1.28.3")
        );
        assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "28"));
        assert_eq!(KubeVersion::parse("1.28").unwrap().normalized, "v1.28");
        assert_eq!(
            KubeVersion::parse("abc").unwrap_err().to_string(),
            "could not parse \"abc\" as version"
        );
        assert_eq!(
            KubeVersion::parse("1").unwrap_err().to_string(),
            "illegal version string \"1\""
        );
    }

    #[test]
    fn api_versions_has_defaults_and_extras() {
        let apis = ApiVersions::with_extra(&["example.com/v1/Thing,other.io/v2".to_string()]);
        assert!(apis.has("apps/v1"));
        assert!(apis.has("example.com/v1/Thing"));
        assert!(apis.has("other.io/v2"));
        assert!(!apis.has("apps/v2"));
    }
}
