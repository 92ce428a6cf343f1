"""The gateway: the web control panel people use (the seed's 【メールアカウント(ユーザー用)】 and the admin
screens). It holds no state and no rule: every page asks the services through the broker, as the broker
user `gateway`, which may only send commands."""
