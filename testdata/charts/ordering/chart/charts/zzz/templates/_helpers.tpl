{{- define "shared.name" -}}zzz-definition{{- end -}}
