{{- define "argolite.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "argolite.fullname" -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels for a component. Usage: (dict "context" . "component" "server" "name" "server") */}}
{{- define "argolite.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .context.Chart.Name .context.Chart.Version }}
{{ include "argolite.selectorLabels" (dict "context" .context "name" .name "component" .component) }}
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
app.kubernetes.io/part-of: argolite
app.kubernetes.io/version: {{ regexReplaceAll "[^a-zA-Z0-9-_.]+" (default .context.Chart.AppVersion .context.Values.global.image.tag) "" | trunc 63 | quote }}
{{- end }}

{{- define "argolite.selectorLabels" -}}
{{- if .name -}}
app.kubernetes.io/name: {{ include "argolite.name" .context }}-{{ .name }}
{{ end -}}
app.kubernetes.io/instance: {{ .context.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{/* Renders a map of settings to a ConfigMap's data: strings go through tpl, the rest through toString/toYaml. */}}
{{- define "argolite.settings" -}}
{{- $context := .context -}}
{{- range $key, $value := omit .settings "create" "annotations" }}
{{- if kindIs "map" $value }}
{{ $key }}: |
  {{- toYaml $value | nindent 2 }}
{{- else if kindIs "string" $value }}
{{- if $value }}
{{ $key }}: {{ tpl $value $context | toString | quote }}
{{- end }}
{{- else if kindIs "invalid" $value }}
{{- else }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- end }}
