{{/*
Names. The fullname defaults to `sealed-secrets-controller` (values.yaml): the Service name
kubeseal looks for. Every RBAC object is `<fullname>-<role>`, a pattern upstream's chart never
renders, so the two charts can be installed side by side during a migration.
*/}}
{{- define "sealkit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sealkit.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sealkit.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sealkit.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sealkit.unsealerName" -}}
{{- default (printf "%s-unsealer" (include "sealkit.fullname" .)) .Values.rbac.clusterRoleName -}}
{{- end -}}

{{- define "sealkit.namespacedRolesName" -}}
{{- default (printf "%s-unsealer" (include "sealkit.fullname" .)) .Values.rbac.namespacedRolesName -}}
{{- end -}}

{{/*
Selector and pod labels: the same as deploy/, so pods keep their labels whichever way the
controller was installed, and the immutable Deployment selector never differs.
*/}}
{{- define "sealkit.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sealkit.fullname" . }}
{{- end -}}

{{- define "sealkit.labels" -}}
{{ include "sealkit.selectorLabels" . }}
app.kubernetes.io/part-of: sealkit
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels for RBAC objects: the common ones plus rbac.labels. */}}
{{- define "sealkit.rbacLabels" -}}
{{ include "sealkit.labels" . }}
{{- with .Values.rbac.labels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "sealkit.annotations" -}}
{{- with .Values.commonAnnotations }}
annotations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "sealkit.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.registry -}}
{{- printf "%s/%s:%s" .Values.image.registry .Values.image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* `k=v,k=v` from a map of strings (upstream's --privatekey-labels/-annotations). */}}
{{- define "sealkit.kvList" -}}
{{- $out := list -}}
{{- range $k, $v := . -}}
{{- if not (kindIs "string" $v) -}}
{{- fail (printf "privateKeyLabels/privateKeyAnnotations: the value of %q must be a string" $k) -}}
{{- end -}}
{{- $out = append $out (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}

{{/* The unsealer rules, shared by the ClusterRole and the namespaced Roles. */}}
{{- define "sealkit.unsealerRules" -}}
- apiGroups: [bitnami.com]
  resources: [sealedsecrets]
  verbs: [get, list, watch]
# Status is written with one JSON merge patch per reconcile.
- apiGroups: [bitnami.com]
  resources: [sealedsecrets/status]
  verbs: [update, patch]
# No delete: the garbage collector removes Secrets through their ownerReference.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, update]
- apiGroups: [""]
  resources: [events]
  verbs: [create, get, patch]
{{- end -}}
