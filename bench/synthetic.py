"""Knowledge bases of any size, for benchmarks: the real entries, retold about many subjects.

Entry N is real entry N mod 38 about one subject (a kind of invention, an aspect of it and a
setting), in both languages: its question and four alternates per language carry the subject,
and its answer is the real answer's first sentences followed by the subject. So the vocabulary,
sentence shapes and answer lengths are the real ones, every entry is told apart only by
its subject — the hard case for a matcher — and the words every entry shares make long posting
lists, as a large real knowledge base would.
"""

import itertools
import random
from collections.abc import Iterator

from bot.knowledge import Entry, KnowledgeBase, Text

ALTERNATES = 4

# Parallel English and Chinese words; their product gives over 100,000 distinct subjects.
FIELDS = [
    ("battery", "电池"), ("semiconductor", "半导体"), ("drone", "无人机"), ("robot", "机器人"),
    ("vaccine", "疫苗"), ("antibody", "抗体"), ("catalyst", "催化剂"), ("laser", "激光器"),
    ("sensor", "传感器"), ("lens", "镜头"), ("engine", "发动机"), ("turbine", "涡轮机"),
    ("textile", "纺织品"), ("ceramic", "陶瓷"), ("polymer", "聚合物"), ("alloy", "合金"),
    ("fertiliser", "化肥"), ("seed", "种子"), ("beverage", "饮料"), ("cosmetic", "化妆品"),
    ("toy", "玩具"), ("furniture", "家具"), ("bicycle", "自行车"), ("scooter", "滑板车"),
    ("camera", "相机"), ("headphone", "耳机"), ("keyboard", "键盘"), ("printer", "打印机"),
    ("router", "路由器"), ("antenna", "天线"), ("satellite", "卫星"), ("pump", "水泵"),
    ("valve", "阀门"), ("bearing", "轴承"), ("gearbox", "齿轮箱"), ("inverter", "逆变器"),
    ("charger", "充电器"), ("display", "显示屏"), ("chip", "芯片"), ("algorithm", "算法"),
    ("database", "数据库"), ("game", "游戏"), ("film", "电影"), ("song", "歌曲"),
    ("novel", "小说"), ("logo", "标志"), ("package", "包装"), ("garment", "服装"),
    ("shoe", "鞋"), ("watch", "手表"),
]  # fmt: skip
ASPECTS = [
    ("cooling", "散热"), ("coating", "涂层"), ("housing", "外壳"), ("control", "控制"),
    ("interface", "接口"), ("material", "材料"), ("process", "工艺"), ("design", "外观"),
    ("circuit", "电路"), ("software", "软件"), ("formula", "配方"), ("mould", "模具"),
    ("hinge", "铰链"), ("filter", "滤网"), ("motor", "电机"), ("frame", "框架"),
    ("label", "标签"), ("sealing", "密封"), ("calibration", "校准"), ("recycling", "回收"),
    ("lighting", "照明"), ("storage", "存储"), ("navigation", "导航"), ("safety", "安全"),
    ("welding", "焊接"), ("printing", "印刷"), ("dyeing", "染色"), ("cutting", "切割"),
    ("assembly", "装配"), ("testing", "检测"), ("packaging", "封装"), ("wiring", "布线"),
    ("heating", "加热"), ("cleaning", "清洗"), ("folding", "折叠"), ("charging", "充电"),
    ("imaging", "成像"), ("encryption", "加密"), ("tracking", "追踪"), ("mixing", "搅拌"),
    ("drying", "干燥"), ("grinding", "研磨"), ("spraying", "喷涂"), ("sorting", "分拣"),
    ("lubrication", "润滑"), ("insulation", "绝缘"), ("vibration", "减振"), ("locking", "锁定"),
    ("feeding", "送料"), ("venting", "通风"),
]  # fmt: skip
SETTINGS = [
    ("at a university lab", "在高校实验室"), ("at a startup", "在初创公司"),
    ("with a Chinese partner", "与中国合作方"), ("for export", "用于出口"),
    ("at a state-owned company", "在国有企业"), ("in a joint venture", "在合资企业"),
    ("as a freelancer", "作为自由职业者"), ("at a research institute", "在科研院所"),
    ("for a hospital", "为医院"), ("for a car maker", "为汽车厂"),
    ("in Zhongguancun", "在中关村"), ("in Shunyi", "在顺义"), ("in Yizhuang", "在亦庄"),
    ("in Haidian", "在海淀"), ("in Chaoyang", "在朝阳"), ("in Daxing", "在大兴"),
    ("for a platform seller", "为电商卖家"), ("for a game studio", "为游戏工作室"),
    ("with a German client", "与德国客户"), ("with a Japanese client", "与日本客户"),
    ("with a French client", "与法国客户"), ("with an American client", "与美国客户"),
    ("with a Korean client", "与韩国客户"), ("with a British client", "与英国客户"),
    ("at a bank", "在银行"), ("at an incubator", "在孵化器"), ("at a factory", "在工厂"),
    ("at a design studio", "在设计工作室"), ("at a law firm", "在律所"),
    ("at a hospital", "在医院"), ("for a museum", "为博物馆"), ("for a school", "为学校"),
    ("for a publisher", "为出版社"), ("for a brand owner", "为品牌方"),
    ("for a distributor", "为经销商"), ("for an investor", "为投资人"),
    ("before a trade fair", "在展会前"), ("after a trade fair", "在展会后"),
    ("during a pilot", "在试点期间"), ("before fundraising", "在融资前"),
]  # fmt: skip


def subjects() -> Iterator[tuple[str, str]]:
    """(English, Chinese) subjects, each different, in a fixed order."""
    for (field_en, field_zh), (aspect_en, aspect_zh), (setting_en, setting_zh) in itertools.product(
        FIELDS, ASPECTS, SETTINGS
    ):
        yield f"{aspect_en} of a {field_en} {setting_en}", f"{setting_zh}{field_zh}{aspect_zh}"


def synthetic(real: KnowledgeBase, size: int, seed: int = 7) -> KnowledgeBase:
    """A knowledge base of `size` entries modelled on `real` (its glossary and subjects kept)."""
    if size <= len(real):
        kept = dict(itertools.islice(real.entries.items(), size))
        return KnowledgeBase(kept, f"{real.version}-{size}", real.glossary, real.out_of_scope)
    rng = random.Random(seed)
    models = list(real)
    entries: dict[str, Entry] = {}
    for number, (subject_en, subject_zh) in zip(range(size), subjects(), strict=False):
        model = models[number % len(models)]
        entry_id = f"{model.id}.s{number}"
        entries[entry_id] = model.model_copy(
            update={
                "id": entry_id,
                "en": _retold(model.en, rng, f"about the {subject_en}", " "),
                "zh": _retold(model.zh, rng, f"（{subject_zh}）", ""),
                "related": (),
            }
        )
    return KnowledgeBase(entries, f"synthetic-{size}", real.glossary, real.out_of_scope)


def _retold(text: Text, rng: random.Random, subject: str, space: str) -> Text:
    alternates = rng.sample(text.alternates, min(ALTERNATES, len(text.alternates)))
    ending, stop = ("?", ". ") if space else ("？", "。")
    sentences = text.answer.split(stop)
    return Text(
        question=f"{text.question.rstrip('?？')}{space}{subject}{ending}",
        alternates=tuple(f"{a.rstrip('?？')}{space}{subject}{ending}" for a in alternates),
        answer=stop.join(sentences[:2]).rstrip(".。") + f"{space}{subject}{stop.strip()}",
    )
