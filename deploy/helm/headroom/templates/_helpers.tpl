{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "headroom.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, with the chart name unless it already contains it. */}}
{{- define "headroom.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "headroom.selectorLabels" -}}
app.kubernetes.io/name: {{ include "headroom.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "headroom.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "headroom.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "headroom.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "headroom.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret mounted at secrets.mountPath, or empty when there is none. */}}
{{- define "headroom.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if .Values.secrets.create }}
{{- printf "%s-secrets" (include "headroom.fullname" .) }}
{{- end }}
{{- end }}

{{/* headroom.yaml: the config values, with strings rendered through tpl. */}}
{{- define "headroom.configYaml" -}}
{{- tpl (toYaml .Values.config) . }}
{{- end }}

{{/* The Prometheus job name the ServiceMonitor gives headroom's target: the Service name. */}}
{{- define "headroom.job" -}}
{{- include "headroom.fullname" . }}
{{- end }}

{{/* A rules file with the job selector and runbook links adapted to this release. */}}
{{- define "headroom.rules" -}}
{{- $text := .root.Files.Get .file }}
{{- $text = replace "job=\"headroom\"" (printf "job=%q" (include "headroom.job" .root)) $text }}
{{- if .root.Values.prometheusRule.runbookBaseUrl }}
{{- $text = replace "docs/runbook.md" (trimSuffix "/" .root.Values.prometheusRule.runbookBaseUrl) $text }}
{{- end }}
{{- $text }}
{{- end }}
