{{- define "keyvalue.image" -}}
{{ include "kvcommon.images.image" (dict "imageRoot" .Values.image "global" .Values.global) }}
{{- end -}}

{{- define "keyvalue.metrics.image" -}}
{{ include "kvcommon.images.image" (dict "imageRoot" .Values.metrics.image "global" .Values.global) }}
{{- end -}}

{{- define "keyvalue.imagePullSecrets" -}}
{{- include "kvcommon.images.renderPullSecrets" (dict "images" (list .Values.image .Values.metrics.image) "context" $) -}}
{{- end -}}

{{- define "keyvalue.secretName" -}}
{{- if .Values.auth.existingSecret -}}
{{- printf "%s" (tpl .Values.auth.existingSecret $) | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s" (include "kvcommon.names.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "keyvalue.secretPasswordKey" -}}
{{- if and .Values.auth.existingSecret .Values.auth.existingSecretPasswordKey -}}
{{- printf "%s" (tpl .Values.auth.existingSecretPasswordKey $) -}}
{{- else -}}
{{- printf "kv-password" -}}
{{- end -}}
{{- end -}}

{{- define "keyvalue.createSecret" -}}
{{- if and .Values.auth.enabled (not .Values.auth.existingSecret) -}}
    {{- true -}}
{{- end -}}
{{- end -}}

{{/* The resources block: explicit resources win over the preset. */}}
{{- define "keyvalue.resources" -}}
{{- if .resources -}}
{{- toYaml .resources -}}
{{- else if ne .resourcesPreset "none" -}}
{{- include "kvcommon.resources.preset" (dict "type" .resourcesPreset) -}}
{{- end -}}
{{- end -}}
