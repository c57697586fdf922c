{{- define "lbnet.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lbnet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "lbnet.image" -}}
{{ .image.repository }}:{{ .image.tag | default .appVersion }}
{{- end -}}

{{/* The memberlist secret: reuse the cluster's (lookup), else derive one from the release. */}}
{{- define "lbnet.secretKey" -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (printf "%s-memberlist" (include "lbnet.fullname" .)) -}}
{{- if $secret -}}
{{- index $secret.data "secretkey" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Release.Namespace | sha256sum | b64enc | trunc 64 -}}
{{- end -}}
{{- end -}}

{{/* Tolerations of the speaker: the master taints when tolerateMaster, then the user's. */}}
{{- define "lbnet.speaker.tolerations" -}}
{{- $tolerations := list -}}
{{- if .Values.speaker.tolerateMaster -}}
{{- range $key := list "node-role.kubernetes.io/master" "node-role.kubernetes.io/control-plane" -}}
{{- $tolerations = append $tolerations (dict "key" $key "effect" "NoSchedule" "operator" "Exists") -}}
{{- end -}}
{{- end -}}
{{- concat $tolerations .Values.speaker.tolerations | toYaml -}}
{{- end -}}
