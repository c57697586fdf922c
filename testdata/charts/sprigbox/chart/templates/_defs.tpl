{{- define "sprigbox.block" -}}
default block body for {{ . }}
{{- end -}}

{{- define "sprigbox.recurse" -}}
{{- if gt (int .n) 0 -}}
{{ .n }} {{ include "sprigbox.recurse" (dict "n" (sub .n 1)) }}
{{- else -}}
liftoff
{{- end -}}
{{- end -}}

{{- define "sprigbox.dot" -}}
{{- printf "%T:%v" . . -}}
{{- end -}}
