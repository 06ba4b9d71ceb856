# Berth terminal defaults. The home directory is an empty tmpfs in a session, so there are
# no dotfiles from /etc/skel: give interactive shells a readable prompt and colours here.
if [ -n "${BASH_VERSION:-}" ] && [ -n "${PS1:-}" ]; then
  PS1='\[\e[1;32m\]\u\[\e[0m\]:\[\e[1;34m\]\w\[\e[0m\]\$ '
  alias ls='ls --color=auto'
  alias grep='grep --color=auto'
  export EDITOR=vi PAGER=less LESS=-R
  # History lives on the tmpfs home and disappears with the session, which is intended.
  HISTSIZE=5000
fi
