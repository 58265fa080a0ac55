# Bash in a Code Pilot terminal: the system's and the user's set-up, then a short prompt,
# "maya:./src$ ": the hub user and the path inside the workspace, not the host's path.
[ -f /etc/bash.bashrc ] && . /etc/bash.bashrc
[ -f ~/.bashrc ] && . ~/.bashrc
__codepilot_where() {
  local root="${JUPYTER_SERVER_ROOT%/}"
  case "$PWD/" in
    "$root"/) printf '.' ;;
    "$root"/*) printf '.%s' "${PWD#"$root"}" ;;
    *) printf '%s' "$PWD" ;;
  esac
}
PS1='\[\e[1;32m\]${JUPYTERHUB_USER:-\u}\[\e[0m\]:\[\e[1;34m\]$(__codepilot_where)\[\e[0m\]\$ '
