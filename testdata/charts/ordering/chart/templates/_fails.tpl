{{- define "ordering.failInHelper" -}}
{{- if .Values.failInHelper -}}
{{- fail (printf "helper refused %v" .Values.failInHelper) -}}
{{- end -}}
{{- end -}}
