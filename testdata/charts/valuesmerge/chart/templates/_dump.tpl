{{/* Dumps a values tree the same way at every chart level. */}}
{{- define "dump" -}}
{{ toYaml . }}
{{- end -}}
