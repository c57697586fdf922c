{{- define "shared.name" -}}aaa-definition{{- end -}}
{{- define "aaa.helper" -}}helper from aaa, sees {{ include "parent.only" . }}{{- end -}}
