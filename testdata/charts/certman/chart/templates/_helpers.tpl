{{- define "certman.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "certman.fullname" -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "certman.namespace" -}}
{{- default .Release.Namespace .Values.namespace -}}
{{- end -}}

{{- define "certman.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "certman.labels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- if eq .Release.Service "Helm" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "certman.chart" . }}
{{- end }}
{{- with .Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Component labels. Usage: include "certman.componentLabels" (list $ "webhook") */}}
{{- define "certman.componentLabels" -}}
{{- $ctx := index . 0 -}}
{{- $component := index . 1 -}}
app: {{ printf "%s-%s" (include "certman.name" $ctx) $component | trimSuffix "-controller" }}
app.kubernetes.io/name: {{ printf "%s-%s" (include "certman.name" $ctx) $component | trimSuffix "-controller" }}
app.kubernetes.io/component: {{ $component | quote }}
{{ include "certman.labels" $ctx }}
{{- end -}}

{{- define "certman.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
    {{ default (include "certman.fullname" .) .Values.serviceAccount.name }}
{{- else -}}
    {{ default "default" .Values.serviceAccount.name }}
{{- end -}}
{{- end -}}

{{/* image: repository, then @digest or :tag (default .Chart.AppVersion). Usage: (tuple .Values.image $.Chart.AppVersion) */}}
{{- define "image" -}}
{{- $defaultTag := index . 1 -}}
{{- with index . 0 -}}
{{- if .registry -}}{{ printf "%s/%s" .registry .repository }}{{- else -}}{{- .repository -}}{{- end -}}
{{- if .digest -}}{{ printf "@%s" .digest }}{{- else -}}{{ printf ":%s" (default $defaultTag .tag) }}{{- end -}}
{{- end }}
{{- end }}

{{- define "certman.webhook.caRef" -}}
{{- template "certman.namespace" . }}/{{ template "certman.fullname" . }}-webhook-ca
{{- end -}}
