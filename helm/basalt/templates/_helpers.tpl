{{/* The operator's name: its ServiceAccount, Deployment, RBAC and Lease holder prefix. */}}
{{- define "basalt.operatorName" -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "basalt.labels" -}}
app.kubernetes.io/name: basalt-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "basalt.selectorLabels" -}}
app.kubernetes.io/name: basalt-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "basalt.operatorImage" -}}
{{- printf "%s:%s" .Values.operator.image.repository (default .Chart.AppVersion .Values.operator.image.tag) -}}
{{- end -}}
