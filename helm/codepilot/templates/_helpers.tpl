{{/*
Names, labels and shared fragments of the Code Pilot chart.
Object names follow the contract with the hub config: <release>-hub, <release>-proxy-api.
*/}}

{{- define "codepilot.name" -}}codepilot{{- end }}

{{- define "codepilot.hubName" -}}{{ .Release.Name }}-hub{{- end }}
{{- define "codepilot.hubConfigName" -}}{{ .Release.Name }}-hub-config{{- end }}
{{- define "codepilot.secretsName" -}}{{ .Release.Name }}-secrets{{- end }}
{{- define "codepilot.proxyName" -}}{{ .Release.Name }}-proxy{{- end }}
{{- define "codepilot.proxyApiName" -}}{{ .Release.Name }}-proxy-api{{- end }}
{{- define "codepilot.proxyPublicName" -}}{{ .Release.Name }}-proxy-public{{- end }}
{{- define "codepilot.s3GeneratedSecretName" -}}{{ .Release.Name }}-s3{{- end }}
{{- define "codepilot.previewName" -}}{{ .Release.Name }}-preview{{- end }}

{{/* Scheme of preview URLs: preview.scheme, else https with preview.tls.secretName. */}}
{{- define "codepilot.previewScheme" -}}
{{- .Values.preview.scheme | default (ternary "https" "http" (not (empty .Values.preview.tls.secretName))) -}}
{{- end }}

{{/* Secret with the preview gateway's signing-key and api-token. */}}
{{- define "codepilot.previewSecretName" -}}
{{- .Values.preview.gateway.existingSecret | default (include "codepilot.previewName" .) -}}
{{- end }}

{{/*
The preview gateway's public URL, where viewers sign in: with per-user hosts on a host of
its own (JupyterHub's codepilot-preview--service.<host>), else under the hub's public URL.
The hub registers it with this URL (its OAuth callback), and the gateway serves it.
*/}}
{{- define "codepilot.previewPublicUrl" -}}
{{- $prefix := printf "%sservices/codepilot-preview/" .Values.hub.baseUrl -}}
{{- with include "codepilot.subdomainHost" . -}}
{{- $scheme := regexReplaceAll "://.*$" . "" -}}
{{- $host := regexReplaceAll "/.*$" (regexReplaceAll "^[a-zA-Z][a-zA-Z0-9+.-]*://" . "") "" -}}
{{ $scheme }}://codepilot-preview--service.{{ $host }}{{ $prefix }}
{{- else -}}
{{ include "codepilot.publicHubUrl" . }}{{ $prefix }}
{{- end -}}
{{- end }}

{{/* Secret with proxy-token and cookie-secret: hub.existingSecret, else the chart's own. */}}
{{- define "codepilot.tokensSecretName" -}}
{{- .Values.hub.existingSecret | default (include "codepilot.secretsName" .) -}}
{{- end }}

{{/* Whether previews are on (preview.domain set). */}}
{{- define "codepilot.previewEnabled" -}}
{{- if .Values.preview.domain }}true{{ end -}}
{{- end }}

{{/*
Public URL of the hub, where preview viewers sign in: preview.hubUrl, else ingress.host
(https with ingress.tls), else hub.subdomainHost; "" when none is known. Never reads
codepilot.subdomainHost, which reads it.
*/}}
{{- define "codepilot.publicHubUrl" -}}
{{- if .Values.preview.hubUrl -}}
{{ .Values.preview.hubUrl | trimSuffix "/" }}
{{- else if and .Values.ingress.enabled .Values.ingress.host -}}
{{ ternary "https" "http" (not (empty .Values.ingress.tls.secretName)) }}://{{ .Values.ingress.host }}
{{- else if .Values.hub.subdomainHost -}}
{{ .Values.hub.subdomainHost | trimSuffix "/" }}
{{- end -}}
{{- end }}

{{/* Whether the hub uses an external database (hub.db.url or hub.db.existingSecret). */}}
{{- define "codepilot.externalDb" -}}
{{- if or .Values.hub.db.url .Values.hub.db.existingSecret }}true{{ end -}}
{{- end }}

{{/*
Whether the hub keeps a volume (<release>-hub-db at /srv/codepilot): for SQLite. The
preview gateway keeps its share levels in the hub's database, its key in a Secret.
*/}}
{{- define "codepilot.hubVolume" -}}
{{- if not (include "codepilot.externalDb" .) }}true{{ end -}}
{{- end }}

{{/* Secret holding AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for the hub, or "" for none. */}}
{{- define "codepilot.s3SecretName" -}}
{{- if .Values.s3.existingSecret -}}
{{ .Values.s3.existingSecret }}
{{- else if .Values.s3.accessKeyId -}}
{{ include "codepilot.s3GeneratedSecretName" . }}
{{- end -}}
{{- end }}

{{/* Labels that select the pods of one component; include with (dict "root" $ "component" "hub"). */}}
{{- define "codepilot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "codepilot.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of an object of one component. */}}
{{- define "codepilot.labels" -}}
{{ include "codepilot.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end }}

{{/* name:tag of an image dict {name, tag}. */}}
{{- define "codepilot.image" -}}{{ .name }}:{{ .tag }}{{- end }}

{{/*
JupyterHub's subdomain_host, the one rule for per-user hosts (each user's servers on
<user>.<host>): hub.subdomainHost when set; else, with hub.subdomains, the hub's public
URL when the chart knows its host (ingress.host: https with ingress.tls, or
preview.hubUrl); else "" (off: no host is known, as behind a port-forward or a bare
LoadBalancer IP). Templates and the hub (its values' hub.subdomainHost) read this only.
*/}}
{{- define "codepilot.subdomainHost" -}}
{{- if .Values.hub.subdomainHost -}}
{{ .Values.hub.subdomainHost }}
{{- else if and .Values.hub.subdomains .Values.ingress.enabled .Values.ingress.host -}}
{{ include "codepilot.publicHubUrl" . }}
{{- end -}}
{{- end }}

{{/*
Host name of the subdomain host (scheme and port stripped), or "" when per-user hosts are off.
*/}}
{{- define "codepilot.subdomainHostName" -}}
{{- with include "codepilot.subdomainHost" . -}}
{{- regexReplaceAll ":[0-9]+$" (regexReplaceAll "/.*$" (regexReplaceAll "^[a-zA-Z][a-zA-Z0-9+.-]*://" . "") "") "" -}}
{{- end -}}
{{- end }}

{{/* Host name of the hub on the Ingress: ingress.host, else the subdomain host. */}}
{{- define "codepilot.ingressHost" -}}
{{- .Values.ingress.host | default (include "codepilot.subdomainHostName" .) -}}
{{- end }}

{{/*
A value of the generated Secret: the explicit value if set, else what the live Secret
already holds (so upgrades keep it), else a new random one.
Include with (dict "root" $ "key" "cookie-secret" "explicit" .Values.hub.cookieSecret), and
"secret" for another Secret of the chart than <release>-secrets.
*/}}
{{- define "codepilot.persistentSecret" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace (.secret | default (include "codepilot.secretsName" .root)) -}}
{{- if .explicit -}}
{{ .explicit }}
{{- else if and $existing $existing.data (hasKey $existing.data .key) -}}
{{ index $existing.data .key | b64dec }}
{{- else -}}
{{- /* sha256 of 64 crypto-random characters: 64 hex digits, as JupyterHub wants. */ -}}
{{ randAlphaNum 64 | sha256sum }}
{{- end -}}
{{- end }}

{{/*
Security context of every container the chart runs: non-root, no privilege escalation,
no capabilities, read-only root filesystem, the runtime's default seccomp profile.
Include with (dict "uid" 1000).
*/}}
{{- define "codepilot.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* imagePullSecrets of the chart's own pods, or nothing. */}}
{{- define "codepilot.imagePullSecrets" -}}
{{- with .Values.hub.imagePullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The hub's view of the values: the sections the hub config reads, less chart-only keys and
less the S3 keys (those reach the hub as environment variables from a Secret).
*/}}
{{- define "codepilot.hubValues" -}}
{{- $hub := omit .Values.hub "subdomains" "image" "imagePullSecrets" "cookieSecret" "existingSecret" "resources" "persistence" "serviceAccount" "nodeSelector" "tolerations" -}}
{{- /* The effective host, hub.subdomains folded in: the hub never re-derives it. */ -}}
{{- $_ := set $hub "subdomainHost" (include "codepilot.subdomainHost" .) -}}
{{- $s3 := omit .Values.s3 "accessKeyId" "secretAccessKey" -}}
{{- $preview := dict "domain" .Values.preview.domain "hubUrl" (include "codepilot.publicHubUrl" .) "scheme" (include "codepilot.previewScheme" .) "relayPort" .Values.preview.relayPort "shareLevels" .Values.preview.shareLevels "relayImage" .Values.hub.image "relayImagePullSecrets" .Values.hub.imagePullSecrets "gatewayUrl" (printf "http://%s:8083" (include "codepilot.previewName" .)) "publicUrl" (include "codepilot.previewPublicUrl" .) -}}
{{- $_ := set $hub "db" (dict "url" .Values.hub.db.url) -}}
{{- dict "hub" $hub "singleuser" .Values.singleuser "s3" $s3 "culler" .Values.culler "preview" $preview | toYaml -}}
{{- end }}

{{/* Egress rule for DNS: the cluster's DNS in kube-system and networkPolicy dnsRanges. */}}
{{- define "codepilot.dnsEgressRule" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
    {{- range .Values.networkPolicy.dnsRanges }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end }}
