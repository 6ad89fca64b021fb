"""Two-word Title Case names ("Liked Pegasus") for keys created without one, as Sentry does."""

from __future__ import annotations

import secrets

ADJECTIVES = (
    "Able Amused Apt Awake Bold Brave Bright Brisk Calm Casual Civil Clever Cosmic Crisp Curious "
    "Daring Dear Eager Earnest Easy Epic Fair Famous Fancy Fine Fluent Fond Frank Free Fresh "
    "Gentle Glad Golden Grand Happy Hardy Helpful Honest Humble Ideal Jolly Keen Kind Liked "
    "Lively Loyal Lucky Magical Merry Mighty Modest Neat Nice Noble Open Patient Polite Proud "
    "Quick Quiet Rapid Ready Regal Robust Rosy Shiny Smart Sincere Solid Steady Sunny Superb "
    "Sweet Swift Tidy Tough Trusty Upbeat Valid Vivid Warm Wise Witty Worthy Zany Zesty"
).split()

ANIMALS = (
    "Aardvark Albatross Alpaca Antelope Badger Beagle Beaver Bison Bobcat Buffalo Camel Caribou "
    "Cheetah Condor Cougar Coyote Crane Dingo Dolphin Donkey Eagle Egret Falcon Ferret Finch "
    "Flamingo Gazelle Gecko Gibbon Giraffe Gopher Gorilla Griffin Hamster Hedgehog Heron Hippo "
    "Hornet Husky Ibex Iguana Impala Jackal Jaguar Kestrel Koala Lemur Leopard Llama Lobster "
    "Lynx Macaw Magpie Mammoth Marmot Meerkat Mole Moose Narwhal Newt Ocelot Octopus Oarfish "
    "Orca Osprey Otter Owl Panda Panther Parrot Pegasus Pelican Penguin Phoenix Puffin Python "
    "Quail Rabbit Raccoon Raven Salmon Seal Shark Sloth Sparrow Squid Stork Swan Tapir Tiger "
    "Toucan Turtle Unicorn Vulture Walrus Weasel Whale Wombat Yak Zebra"
).split()


def petname() -> str:
    """A random two-word name: an adjective and an animal, each at most 10 letters."""
    return f"{secrets.choice(ADJECTIVES)} {secrets.choice(ANIMALS)}"
