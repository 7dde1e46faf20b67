{{- /*
The app's objects written by the chart itself (operator.enabled=false): the same Deployments,
Service, HPAs, PDBs, NetworkPolicy, Ingress and migration Job that the operator applies for an
AppDeployment with this spec (operator/src/children.rs). A test renders both ways and compares
them, so keep each field here in step with children.rs.

Each helper takes a dict: root (the chart's context) and component ("api", "worker",
"migrate" or "network").
*/ -}}

{{- define "basalt.app.name" -}}
{{- .Values.appDeployment.name -}}
{{- end -}}

{{- define "basalt.app.selectorLabels" -}}
app.kubernetes.io/name: basalt
app.kubernetes.io/instance: {{ include "basalt.app.name" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "basalt.app.labels" -}}
{{ include "basalt.app.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "basalt.app.metadata" -}}
name: {{ .name }}
namespace: {{ .root.Release.Namespace }}
labels:
  {{- include "basalt.app.labels" . | nindent 2 }}
{{- end -}}

{{- /* A component's spec (api or worker), {} when unset. */ -}}
{{- define "basalt.app.component" -}}
{{- toYaml (index .root.Values.appDeployment.spec .component | default dict) -}}
{{- end -}}

{{- define "basalt.app.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .ref.name | quote }}
      key: {{ .ref.key | quote }}
      optional: false
{{- end -}}

{{- /* The environment: the secrets, config (LOG_FORMAT json unless set), the component's
listen address and its own env. */ -}}
{{- define "basalt.app.env" -}}
{{- $spec := .root.Values.appDeployment.spec -}}
{{- $secrets := $spec.secrets -}}
{{- $config := $spec.config | default dict -}}
{{ include "basalt.app.secretEnv" (dict "name" "DATABASE_URL" "ref" $secrets.databaseUrl) }}
{{ include "basalt.app.secretEnv" (dict "name" "JWT_SECRET" "ref" $secrets.jwtSecret) }}
{{ include "basalt.app.secretEnv" (dict "name" "WEBHOOK_ENCRYPTION_KEY" "ref" $secrets.webhookEncryptionKey) }}
{{- with $secrets.redisUrl }}
{{ include "basalt.app.secretEnv" (dict "name" "REDIS_URL" "ref" .) }}
{{- end }}
{{- if not (hasKey $config "LOG_FORMAT") }}
- name: LOG_FORMAT
  value: json
{{- end }}
{{- range $key, $value := $config }}
- name: {{ $key | quote }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- if eq .component "api" }}
- name: BIND_ADDR
  value: "0.0.0.0:8001"
{{- else if eq .component "worker" }}
- name: WORKER_HEALTH_ADDR
  value: "0.0.0.0:8081"
{{- end }}
{{- if ne .component "migrate" }}
{{- with (include "basalt.app.component" . | fromYaml).env }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "basalt.app.probe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
periodSeconds: {{ .period }}
timeoutSeconds: 2
failureThreshold: 3
{{- end -}}

{{- /* The pod: non-root, read-only root filesystem, no capabilities, /tmp in memory. */ -}}
{{- define "basalt.app.podSpec" -}}
{{- $spec := .root.Values.appDeployment.spec -}}
{{- $c := include "basalt.app.component" . | fromYaml -}}
automountServiceAccountToken: false
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  fsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
{{- with $spec.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . | quote }}
  {{- end }}
{{- end }}
{{- if eq .component "migrate" }}
restartPolicy: Never
{{- else if eq .component "worker" }}
# Running jobs get WORKER_SHUTDOWN_GRACE_SECONDS (30) after SIGTERM, plus a margin.
terminationGracePeriodSeconds: 40
{{- end }}
volumes:
  - name: tmp
    emptyDir:
      medium: Memory
containers:
  - name: {{ .component }}
    image: {{ $spec.image | quote }}
    {{- with $spec.imagePullPolicy }}
    imagePullPolicy: {{ . }}
    {{- end }}
    {{- if eq .component "api" }}
    args: [host, serve]
    ports:
      - name: http
        containerPort: 8001
    livenessProbe:
      {{- include "basalt.app.probe" (dict "path" "/health" "port" 8001 "period" 10) | nindent 6 }}
    readinessProbe:
      {{- include "basalt.app.probe" (dict "path" "/ready" "port" 8001 "period" 5) | nindent 6 }}
    {{- else if eq .component "worker" }}
    args: [worker, serve]
    ports:
      - name: health
        containerPort: 8081
    livenessProbe:
      {{- include "basalt.app.probe" (dict "path" "/healthz" "port" 8081 "period" 10) | nindent 6 }}
    readinessProbe:
      {{- include "basalt.app.probe" (dict "path" "/readyz" "port" 8081 "period" 5) | nindent 6 }}
    {{- else }}
    args: [host, migrate]
    {{- end }}
    env:
      {{- include "basalt.app.env" . | nindent 6 }}
    {{- if and (ne .component "migrate") $c.resources }}
    resources:
      {{- toYaml $c.resources | nindent 6 }}
    {{- end }}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      runAsNonRoot: true
      runAsUser: 65532
      capabilities:
        drop: [ALL]
      seccompProfile:
        type: RuntimeDefault
    volumeMounts:
      - name: tmp
        mountPath: /tmp
{{- end -}}

{{- /* The migration Job's name suffix: the first 5 bytes of the image's SHA-256, in hex. */ -}}
{{- define "basalt.app.imageHash" -}}
{{- .Values.appDeployment.spec.image | sha256sum | trunc 10 -}}
{{- end -}}

{{- define "basalt.app.peer" -}}
{{- with .cidr }}
ipBlock:
  cidr: {{ . | quote }}
{{- end }}
{{- with .podSelector }}
podSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .namespaceSelector }}
namespaceSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- /* Whether the chart writes the app itself. */ -}}
{{- define "basalt.app.direct" -}}
{{- if and (not .Values.operator.enabled) .Values.appDeployment.enabled -}}true{{- end -}}
{{- end -}}
