//! `sealos helm template`: renders a Helm chart in-process and prints what `helm template` prints, so a build
//! sees the manifests an install applies without a `helm` binary (and users can diff the two).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::output::{Hint, write_stdout};

/// `sealos helm ...`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sealos helm template ./charts/web
  sealos helm template web ./charts/web -f values-prod.yaml --set image.tag=1.2.3")]
pub struct HelmArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: HelmCommand,
}

/// Helm subcommands.
#[derive(Debug, Subcommand)]
pub enum HelmCommand {
    /// Render a chart as `helm template` does, without helm (the same stdout as helm v4).
    Template(TemplateArgs),
}

/// `sealos helm template [NAME] CHART`.
#[derive(Debug, Args)]
#[command(
    override_usage = "sealos helm template [OPTIONS] [NAME] CHART",
    after_help = "\
Examples:
  sealos helm template ./charts/web
  sealos helm template web ./charts/web -n prod -f values-prod.yaml --set image.tag=1.2.3
  sealos helm template web web-1.4.2.tgz --kube-version 1.29.0 -a monitoring.coreos.com/v1
  sealos helm template web ./charts/web --include-crds --skip-tests -s templates/deployment.yaml
  diff <(sealos helm template web ./charts/web) <(helm template web ./charts/web)

The output is helm v4.1's: manifests sorted by kind, hooks last, `# Source:` lines, no NOTES.txt.
Without --kube-version charts see Kubernetes v1.35.0 (helm v4's default; helm v3.17 uses v1.32.0).
`lookup` finds nothing, as under `helm template`.
The namespace is `default` unless -n names one (helm takes it from the kubeconfig context)."
)]
pub struct TemplateArgs {
    /// The release name, then the chart (a directory or a packed .tgz); with one argument it is the chart
    /// and the release is `release-name`.
    #[arg(value_name = "NAME CHART", num_args = 1..=2, required = true)]
    pub args: Vec<String>,
    /// Values files, in order (later ones win).
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// Set values: `a.b=v`, `list={x,y}`, `a[0].b=v`, several comma-separated.
    #[arg(long, value_name = "KEY=VAL")]
    pub set: Vec<String>,
    /// Set values kept as strings (`--set-string tag=010`).
    #[arg(long, value_name = "KEY=VAL")]
    pub set_string: Vec<String>,
    /// Set values from JSON (`--set-json 'resources={"limits":{"cpu":"1"}}'`).
    #[arg(long, value_name = "KEY=JSON")]
    pub set_json: Vec<String>,
    /// Set values to a file's content (`--set-file script=./init.sh`).
    #[arg(long, value_name = "KEY=PATH")]
    pub set_file: Vec<String>,
    /// The Kubernetes version `.Capabilities.KubeVersion` and the chart's `kubeVersion` check see.
    #[arg(long, value_name = "VERSION")]
    pub kube_version: Option<String>,
    /// Extra API versions for `.Capabilities.APIVersions.Has` (`group/version` or `group/version/Kind`).
    #[arg(short = 'a', long = "api-versions", value_name = "VERSION")]
    pub api_versions: Vec<String>,
    /// The release namespace.
    #[arg(short = 'n', long, value_name = "NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Print the chart's CRDs (files under crds/) first.
    #[arg(long)]
    pub include_crds: bool,
    /// Leave out test hooks (templates annotated `helm.sh/hook: test`).
    #[arg(long)]
    pub skip_tests: bool,
    /// Leave out every hook.
    #[arg(long)]
    pub no_hooks: bool,
    /// Render as an upgrade: `.Release.IsUpgrade` true, `.Release.IsInstall` false.
    #[arg(long)]
    pub is_upgrade: bool,
    /// Only print the manifests of these templates (`templates/deployment.yaml`, globs allowed).
    #[arg(short = 's', long = "show-only", value_name = "TEMPLATE")]
    pub show_only: Vec<String>,
}

/// Runs `sealos helm ...`.
pub fn run(args: &HelmArgs) -> anyhow::Result<()> {
    match &args.command {
        HelmCommand::Template(args) => template(args),
    }
}

fn template(args: &TemplateArgs) -> anyhow::Result<()> {
    let options = options(args);
    let text = charts::template(&options).map_err(|err| explain(&options, &err))?;
    write_stdout(text.as_bytes())
}

/// The library's options from the command line.
pub fn options(args: &TemplateArgs) -> charts::TemplateOptions {
    let (release_name, chart) = match args.args.as_slice() {
        [chart] => ("release-name".to_string(), chart.clone()),
        [name, chart, ..] => (name.clone(), chart.clone()),
        [] => (String::new(), String::new()),
    };
    charts::TemplateOptions {
        release_name,
        namespace: args.namespace.clone(),
        chart: PathBuf::from(chart),
        value_files: args.values.clone(),
        set: args.set.clone(),
        set_string: args.set_string.clone(),
        set_json: args.set_json.clone(),
        set_file: args.set_file.clone(),
        kube_version: args.kube_version.clone(),
        api_versions: args.api_versions.clone(),
        include_crds: args.include_crds,
        skip_tests: args.skip_tests,
        no_hooks: args.no_hooks,
        is_upgrade: args.is_upgrade,
        show_only: args.show_only.clone(),
    }
}

/// Helm's message, with a hint on what to change.
fn explain(options: &charts::TemplateOptions, err: &charts::Error) -> anyhow::Error {
    let message = err.message();
    let hint = if !options.chart.exists() {
        format!(
            "`{}` does not exist: give a chart directory (with Chart.yaml) or a packed .tgz",
            options.chart.display()
        )
    } else if message.contains("kubeVersion") {
        "the chart refuses this Kubernetes version: pass the cluster's with --kube-version"
            .to_string()
    } else if message.contains("schema") {
        "the values break the chart's values.schema.json: fix the values named above".to_string()
    } else if message.contains("YAML parse error") {
        "a template rendered invalid YAML: check the template named above with these values"
            .to_string()
    } else if message.contains("failed parsing --set") {
        "--set takes KEY=VALUE pairs separated by commas; escape literal commas and dots with `\\`"
            .to_string()
    } else {
        "the error names the template file and line (file:line:column); compare with `helm template` \
         to see whether the chart or sealos is at fault"
            .to_string()
    };
    anyhow::Error::new(Hint(hint)).context(message.to_string())
}
