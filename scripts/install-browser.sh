#!/bin/sh
# Installs Debian's Chromium and its WebDriver for the console's browser tests
# (tests/browser/).  Does nothing when both are already there, so CI and a developer
# can run it before every test run at no cost.
set -eu
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver
