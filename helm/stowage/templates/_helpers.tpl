{{/* Common labels. */}}
{{- define "stowage.labels" -}}
app.kubernetes.io/part-of: stowage
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "stowage.operatorImage" -}}
{{ printf "%s/%s:%s" .Values.image.registry .Values.operator.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end -}}

{{- define "stowage.agentImage" -}}
{{ printf "%s/%s:%s" .Values.image.registry .Values.agent.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end -}}

{{/* The CRI socket path on the node. */}}
{{- define "stowage.criSocket" -}}
{{- if .Values.agent.criSocket -}}
{{ .Values.agent.criSocket }}
{{- else if .Values.openshift.enabled -}}
/run/crio/crio.sock
{{- else -}}
/run/containerd/containerd.sock
{{- end -}}
{{- end -}}
