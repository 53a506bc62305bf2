"""The Debian desktop image: a recipe of Debian packages and hooks, built unattended
(``build.build_desktop_image``), cached by its recipe and resolved package versions."""
