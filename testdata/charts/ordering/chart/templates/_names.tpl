{{- define "shared.name" -}}parent-definition{{- end -}}
{{- define "parent.only" -}}defined in the parent{{- end -}}
