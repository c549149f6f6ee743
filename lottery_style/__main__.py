from lottery_style.cli import main

main()
