{{- define "relstore.primary.fullname" -}}
{{- if eq .Values.architecture "replication" -}}
{{- printf "%s-%s" (include "kvcommon.names.fullname" .) .Values.primary.name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- include "kvcommon.names.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "relstore.readReplica.fullname" -}}
{{- printf "%s-%s" (include "kvcommon.names.fullname" .) .Values.readReplicas.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "relstore.image" -}}
{{ include "kvcommon.images.image" (dict "imageRoot" .Values.image "global" .Values.global) }}
{{- end -}}

{{/* The database to create: global.relstore.auth.database wins over auth.database. */}}
{{- define "relstore.database" -}}
{{- $global := .Values.global.relstore.auth.database | default "" -}}
{{- coalesce $global .Values.auth.database | quote -}}
{{- end -}}

{{- define "relstore.secretName" -}}
{{- if .Values.auth.existingSecret -}}
{{- tpl .Values.auth.existingSecret . -}}
{{- else -}}
{{- include "kvcommon.names.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* Fails with a clear message when a setting combination cannot work. */}}
{{- define "relstore.validateValues" -}}
{{- $messages := list -}}
{{- if and .Values.tls.enabled (not .Values.tls.certificatesSecret) -}}
{{- $messages = append $messages "relstore: tls.certificatesSecret\n    You must provide a secret with the certificates when tls.enabled is true" -}}
{{- end -}}
{{- if and (eq .Values.architecture "replication") (lt (int .Values.readReplicas.replicaCount) 1) -}}
{{- $messages = append $messages "relstore: readReplicas.replicaCount\n    replication needs at least one read replica" -}}
{{- end -}}
{{- $message := join "\n" $messages -}}
{{- if $message -}}
{{- printf "\nVALUES VALIDATION:\n%s" $message | fail -}}
{{- end -}}
{{- end -}}
