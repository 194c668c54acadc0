"""The simulated spacecraft: ``spacecraft`` assembles receiver, VVM, patcher and store on
one simulated clock with the mission's instrument; ``simulator`` keeps one VVM in a state
directory between ``vvm`` commands.
"""
