{{/* Pod anti-affinity presets: soft or hard. Usage: (dict "type" "soft" "component" "primary" "customLabels" $labels "context" $) */}}
{{- define "kvcommon.affinities.pods" -}}
{{- $component := default "" .component -}}
{{- $matchLabels := include "kvcommon.labels.matchLabels" (dict "customLabels" (default (dict) .customLabels) "context" .context) | fromYaml -}}
{{- if $component -}}
{{- $_ := set $matchLabels "app.kubernetes.io/component" $component -}}
{{- end -}}
{{- if eq .type "soft" }}
preferredDuringSchedulingIgnoredDuringExecution:
  - podAffinityTerm:
      labelSelector:
        matchLabels: {{- (toYaml $matchLabels) | nindent 10 }}
      topologyKey: kubernetes.io/hostname
    weight: 1
{{- else if eq .type "hard" }}
requiredDuringSchedulingIgnoredDuringExecution:
  - labelSelector:
      matchLabels: {{- (toYaml $matchLabels) | nindent 8 }}
    topologyKey: kubernetes.io/hostname
{{- end -}}
{{- end -}}
