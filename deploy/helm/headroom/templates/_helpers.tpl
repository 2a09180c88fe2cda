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

{{/* headroom.yaml: the config values, with strings rendered through tpl; sharded,
also sharding.mode (each pod's index and the count come from its environment). */}}
{{- define "headroom.configYaml" -}}
{{- if include "headroom.sharded" . }}
{{- $config := deepCopy (.Values.config | default dict) }}
{{- $_ := set $config "sharding" (dict "mode" (include "headroom.shardMode" .)) }}
{{- tpl (toYaml $config) . }}
{{- else }}
{{- tpl (toYaml .Values.config) . }}
{{- end }}
{{- end }}

{{/* The number of shards, checked: a whole number of at least 1. Also refuses what
sharding cannot do, so both workload templates (which include it) fail the same way. */}}
{{- define "headroom.shards" -}}
{{- $sharding := .Values.sharding | default dict }}
{{- $shards := 1 }}
{{- if hasKey $sharding "shards" }}
{{- $shards = $sharding.shards }}
{{- end }}
{{- if or (lt (int $shards) 1) (ne (toString (int $shards)) (toString $shards)) }}
{{- fail (printf "sharding.shards must be a whole number of at least 1, not %v" $shards) }}
{{- end }}
{{- if (.Values.config | default dict).sharding }}
{{- fail "set sharding.shards and sharding.mode, not config.sharding: the chart gives each pod its own shard index" }}
{{- end }}
{{- if and (gt (int $shards) 1) (gt (int .Values.replicaCount) 1) }}
{{- fail "replicaCount > 1 with sharding.shards > 1 is not supported: the StatefulSet runs one pod per shard. For two pods per shard install a second release with the same values (see the chart README, \"Sharding\")" }}
{{- end }}
{{- int $shards }}
{{- end }}

{{/* "true" when the containers are split between several pods, else empty. */}}
{{- define "headroom.sharded" -}}
{{- if gt (int (include "headroom.shards" .)) 1 }}true{{ end }}
{{- end }}

{{/* sharding.mode, checked. */}}
{{- define "headroom.shardMode" -}}
{{- $mode := (.Values.sharding | default dict).mode | default "pod" }}
{{- if not (has $mode (list "pod" "namespace")) }}
{{- fail (printf "sharding.mode must be pod or namespace, not %q" (toString $mode)) }}
{{- end }}
{{- $mode }}
{{- end }}

{{/* The pod template of the Deployment (one shard) and of the StatefulSet (several):
written once so the two never drift apart. */}}
{{- define "headroom.podTemplate" -}}
metadata:
  labels:
    {{- include "headroom.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # Roll the pods when the configuration or the chart-made Secret changes.
    checksum/config: {{ include "headroom.configYaml" . | sha256sum }}
    {{- if and .Values.secrets.create (not .Values.secrets.existingSecret) }}
    checksum/secrets: {{ toYaml .Values.secrets.data | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "headroom.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  containers:
    - name: headroom
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - run
        - --config=/etc/headroom/headroom.yaml
        - --log-format={{ .Values.logFormat }}
        - --log-level={{ .Values.logLevel }}
      {{- if or .Values.env (include "headroom.sharded" .) }}
      env:
        {{- if include "headroom.sharded" . }}
        # This pod's shard: the CLI takes the ordinal suffix of the StatefulSet pod's
        # name (<fullname>-2 is shard 2).
        - name: HEADROOM_SHARD_INDEX
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: HEADROOM_SHARD_COUNT
          value: {{ include "headroom.shards" . | quote }}
        {{- end }}
        {{- with .Values.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      ports:
        - name: http-metrics
          containerPort: 9464
          protocol: TCP
      {{- with .Values.startupProbe }}
      startupProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.livenessProbe }}
      livenessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.readinessProbe }}
      readinessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/headroom/headroom.yaml
          subPath: headroom.yaml
          readOnly: true
        {{- if include "headroom.secretName" . }}
        # Mounted as a directory (no subPath) so rotated values reach the files,
        # which headroom reads at every use.
        - name: secrets
          mountPath: {{ .Values.secrets.mountPath }}
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "headroom.fullname" . }}
    {{- if include "headroom.secretName" . }}
    - name: secrets
      secret:
        secretName: {{ include "headroom.secretName" . }}
        # 0440: read-only for the owner and group (fsGroup) only.
        defaultMode: 288
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
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
