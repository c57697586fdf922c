{{/*
A password kept across upgrades: the existing Secret's value when the cluster has one (lookup gives nothing
under `helm template`), else the provided value, else a value derived from the release so renders are stable.
Usage: {{ include "kvcommon.secrets.passwords.manage" (dict "secret" "name" "key" "password" "providedValues" (list "auth.password") "context" $) }}
*/}}
{{- define "kvcommon.secrets.passwords.manage" -}}
{{- $password := "" }}
{{- $providedPasswordKey := include "kvcommon.utils.getKeyFromList" (dict "keys" .providedValues "context" $.context) }}
{{- $providedPasswordValue := include "kvcommon.utils.getValueFromKey" (dict "key" $providedPasswordKey "context" $.context) }}
{{- $secretData := (lookup "v1" "Secret" (include "kvcommon.names.namespace" .context) .secret).data }}
{{- if $secretData }}
  {{- if hasKey $secretData .key }}
    {{- $password = index $secretData .key | b64dec }}
  {{- end -}}
{{- else if $providedPasswordValue }}
  {{- $password = $providedPasswordValue | toString }}
{{- else }}
  {{- $password = printf "%s/%s/%s" .context.Release.Name .secret .key | sha256sum | trunc 16 }}
{{- end -}}
{{- printf "%s" $password | b64enc | quote -}}
{{- end -}}

{{/* The value at a dotted key path of .Values. */}}
{{- define "kvcommon.utils.getValueFromKey" -}}
{{- $splitKey := splitList "." .key -}}
{{- $value := "" -}}
{{- $latestObj := $.context.Values -}}
{{- range $splitKey -}}
  {{- if not $latestObj -}}
    {{- printf "please review the entire path of '%s' exists in values" $.key | fail -}}
  {{- end -}}
  {{- $value = ( index $latestObj . ) -}}
  {{- $latestObj = $value -}}
{{- end -}}
{{- printf "%v" (default "" $value) -}}
{{- end -}}

{{/* The first key of the list whose value is set. */}}
{{- define "kvcommon.utils.getKeyFromList" -}}
{{- $key := first .keys -}}
{{- $reverseKeys := reverse .keys }}
{{- range $reverseKeys }}
  {{- $value := include "kvcommon.utils.getValueFromKey" (dict "key" . "context" $.context ) }}
  {{- if $value -}}
    {{- $key = . }}
  {{- end -}}
{{- end -}}
{{- printf "%s" $key -}}
{{- end -}}

{{/* A checksum of a rendered template of this chart, for rollout annotations. */}}
{{- define "kvcommon.utils.checksumTemplate" -}}
{{- $obj := include (print .context.Template.BasePath .path) .context | fromYaml -}}
{{ omit $obj "apiVersion" "kind" "metadata" | toYaml | sha256sum }}
{{- end -}}
